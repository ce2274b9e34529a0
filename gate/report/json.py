"""The verdict, its findings and the run's figures as JSON (``docs/report-schema.md``)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from gate import __version__
from gate.layout import REPORT_VERSION
from gate.merge import Merged
from gate.outcome import Outcome
from gate.report.documents import (
    MERGE_VERSION,
    BaselineDoc,
    FiguresDoc,
    FindingDoc,
    MergedDoc,
    ReportDoc,
    merged_data,
    report_data,
)
from gate.report.parts import change, growing_processes, growing_sites
from gate.report.report import Report
from gate.summary import RunSummary, trend_summary
from gate.verdict import Finding

STACK_FRAMES = 20
"""Frames of each site's stack kept in the report (innermost first)."""


def render_json(report: Report) -> str:
    result, current, decision = report.result, report.current, report.decision
    analysis = result.analysis
    grew = growing_processes(result)
    doc: ReportDoc = {
        "report_version": REPORT_VERSION,
        "memgate": __version__,
        "scenario": result.scenario,
        "verdict": decision.verdict,
        "compared_runs": decision.compared_runs,
        "findings": [_finding(f) for f in decision.findings],
        "run": {
            **_figures(current),
            "steady_from_requests": analysis.steady.requests,
            "heap_shape": analysis.heap.shape,
            "heap_reason": analysis.heap.reason,
            "rss_shape": analysis.rss.shape,
            "rss_reason": analysis.rss.reason,
            "load": {
                "requests": result.load.requests,
                "failures": result.load.failures,
                "measured_requests": result.load.measured_requests,
                "requests_per_second": result.load.requests_per_second,
                "stop_reason": result.load.stop_reason,
                "failure_reasons": list(result.load.failure_reasons),
            },
            "provenance": result.provenance,
            "result": report.result_path,
        },
        "baseline": _baseline(report.baseline),
        "sites": [
            {
                "rank": rank,
                "growth": trend_summary(site.trend),
                "confidence": site.confidence,
                "live_bytes_end": site.live_bytes_end,
                "frame": site.frame,
                "user_code": site.in_user_code,
                "stack": list(site.stack[:STACK_FRAMES]),
                "native_frame": site.native_frame,
                "native": list(site.native[:STACK_FRAMES]),
            }
            for rank, site in enumerate(growing_sites(result.sites), start=1)
        ],
        "resources": [
            {
                "name": r.name,
                "at_steady": r.at_steady,
                "at_end": r.at_end,
                "growth": trend_summary(r.trend) if r.trend else None,
                "grows": r.grows,
            }
            for r in result.resources
        ],
        "gc": None
        if result.gc is None
        else {
            "collections_per_request": result.gc.collections_per_request,
            "full_per_1000_requests": result.gc.full_per_1000_requests,
            "seconds_per_request": result.gc.seconds_per_request,
        },
        "processes": [
            {
                "pid": process.pid,
                "main": process.main,
                "capture": process.capture,
                "heap_steady": process.heap[analysis.steady.index],
                "heap_end": process.heap[-1],
                "growth": trend_summary(process.trend) if process.trend else None,
                "grows": process in grew,
            }
            for process in result.process_curves
        ],
        "dependencies_changed": [
            {
                "name": c.name,
                "before": c.before,
                "after": c.after,
                "findings": sum(report.counted_for(f) == c.name for f in decision.findings),
            }
            for c in report.changes
        ],
        "retention": None
        if result.retention is None
        else {
            "retained": list(result.retention.retained),
            "censuses": list(result.retention.censuses),
            "requests": result.retention.requests,
            "problems": list(result.retention.problems),
        },
    }
    return json.dumps(_finite(report_data(doc)), indent=2) + "\n"


def render_merged_json(merged: Merged) -> str:
    """Several checks in one document (``docs/report-schema.md``, merged reports)."""
    doc: MergedDoc = {
        "merge_version": MERGE_VERSION,
        "memgate": __version__,
        "verdict": merged.verdict,
        "counts": {o.value: merged.count(o) for o in Outcome if o is not Outcome.ERROR},
        "scenarios": [
            {
                "scenario": r.scenario,
                "environment": r.environment,
                "verdict": r.verdict,
                "shape": r.shape,
                "compared_runs": r.compared_runs,
                "commit": r.commit,
                "branch": r.branch,
                "report": r.source,
                "result": r.result,
                "worst_finding": r.findings.index(r.worst) if r.worst else None,
                "findings": [_finding(f) for f in r.findings],
            }
            for r in merged.reports
        ],
        "errors": list(merged.errors),
    }
    return json.dumps(_finite(merged_data(doc)), indent=2) + "\n"


def _finding(finding: Finding) -> FindingDoc:
    fields = {f.name: getattr(finding, f.name) for f in dataclasses.fields(finding)}
    return FindingDoc(**fields, change=change(finding) or None)


def _figures(run: RunSummary) -> FiguresDoc:
    return {
        "shape": run.shape,
        "heap_growth": run.heap,
        "rss_growth": run.rss,
        "peak_heap": run.peak_heap,
        "final_heap": run.final_heap,
        "peak_rss": run.peak_rss,
        "final_rss": run.final_rss,
        "measured_requests": run.measured_requests,
    }


def _baseline(run: RunSummary | None) -> BaselineDoc | None:
    if run is None:
        return None
    return {
        "run_id": run.run_id,
        "recorded_at": run.recorded_at,
        **_figures(run),
        "provenance": run.provenance,
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write ``null`` for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
