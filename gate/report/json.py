"""The verdict, its findings and the run's figures as JSON (``docs/report-schema.md``)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from gate import __version__
from gate.baseline import RunSummary
from gate.merge import Merged
from gate.model import Frame, NativeFrame, Provenance, Trend
from gate.outcome import Outcome
from gate.report.parts import Report, change, growing_processes, growing_sites
from gate.verdict import Finding

REPORT_VERSION = 1
MERGE_VERSION = 1
"""Of the merged document ``memgate merge --format json`` writes."""
STACK_FRAMES = 20
"""Frames of each site's stack kept in the report (innermost first)."""


def render_json(report: Report) -> str:
    result, current, decision = report.result, report.current, report.decision
    analysis = result.analysis
    grew = growing_processes(result)
    doc = {
        "report_version": REPORT_VERSION,
        "memgate": __version__,
        "scenario": dataclasses.asdict(result.scenario),
        "verdict": decision.verdict.value,
        "compared_runs": decision.compared_runs,
        "findings": [_finding(f) for f in decision.findings],
        "run": {
            **_figures(current),
            "steady_from_requests": analysis.steady.requests,
            "heap_shape": analysis.heap.shape.value,
            "heap_reason": analysis.heap.reason,
            "rss_shape": analysis.rss.shape.value,
            "rss_reason": analysis.rss.reason,
            "load": {
                "requests": result.load.requests,
                "failures": result.load.failures,
                "measured_requests": result.load.measured_requests,
                "requests_per_second": result.load.requests_per_second,
                "stop_reason": result.load.stop_reason,
                "failure_reasons": [dataclasses.asdict(r) for r in result.load.failure_reasons],
            },
            "provenance": _provenance(result.provenance),
            "result": report.result_path,
        },
        "baseline": _baseline(report.baseline),
        "sites": [
            {
                "rank": rank,
                "growth": _trend(site.trend),
                "confidence": site.confidence,
                "live_bytes_end": site.live_bytes_end,
                "frame": _frame(site.frame),
                "user_code": site.in_user_code,
                "stack": [_frame(f) for f in site.stack[:STACK_FRAMES]],
                "native_frame": _native(site.native_frame),
                "native": [_native(f) for f in site.native[:STACK_FRAMES]],
            }
            for rank, site in enumerate(growing_sites(result.sites), start=1)
        ],
        "resources": [
            {
                "name": r.name,
                "at_steady": r.at_steady,
                "at_end": r.at_end,
                "growth": _trend(r.trend) if r.trend else None,
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
                "growth": _trend(process.trend) if process.trend else None,
                "grows": process in grew,
            }
            for process in result.process_curves
        ],
        "dependencies_changed": [
            {
                "name": c.name,
                "before": c.before,
                "after": c.after,
                "findings": sum(report.dependency_of(f.where) == c.name for f in decision.findings),
            }
            for c in report.changes
        ],
        "retention": None
        if result.retention is None
        else {
            "retained": [dataclasses.asdict(r) for r in result.retention.retained],
            "censuses": [dataclasses.asdict(c) for c in result.retention.censuses],
            "requests": result.retention.requests,
            "problems": list(result.retention.problems),
        },
    }
    return json.dumps(_finite(doc), indent=2) + "\n"


def render_merged_json(merged: Merged) -> str:
    """Several checks in one document (``docs/report-schema.md``, merged reports)."""
    doc = {
        "merge_version": MERGE_VERSION,
        "memgate": __version__,
        "verdict": merged.verdict.value,
        "counts": {o.value: merged.count(o) for o in Outcome if o is not Outcome.ERROR},
        "scenarios": [
            {
                "scenario": r.scenario,
                "environment": r.environment,
                "verdict": r.verdict.value,
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
        "errors": [{"source": bad.source, "reason": bad.reason} for bad in merged.errors],
    }
    return json.dumps(_finite(doc), indent=2) + "\n"


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        **{k: v for k, v in dataclasses.asdict(finding).items() if k != "where"},
        "change": change(finding) or None,
        "where": _frame(finding.where),
    }


def _figures(run: RunSummary) -> dict[str, Any]:
    return {
        "shape": run.shape.value,
        "heap_growth": dataclasses.asdict(run.heap),
        "rss_growth": dataclasses.asdict(run.rss),
        "peak_heap": run.peak_heap,
        "final_heap": run.final_heap,
        "peak_rss": run.peak_rss,
        "final_rss": run.final_rss,
        "measured_requests": run.measured_requests,
    }


def _baseline(run: RunSummary | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.run_id,
        "recorded_at": run.recorded_at,
        **_figures(run),
        "provenance": _provenance(run.provenance),
    }


def _provenance(provenance: Provenance) -> dict[str, Any]:
    """A run's provenance, without the interpreter's map of packages to distributions
    (the result keeps it: it is for naming frames, not for readers)."""
    doc = dataclasses.asdict(provenance)
    doc.pop("packages", None)
    return doc


def _trend(trend: Trend) -> dict[str, float]:
    return {"slope": trend.slope, "low": trend.low, "high": trend.high, "p_value": trend.p_value}


def _frame(frame: Frame | None) -> dict[str, Any] | None:
    return dataclasses.asdict(frame) if frame else None


def _native(frame: NativeFrame | None) -> dict[str, Any] | None:
    return dataclasses.asdict(frame) if frame else None


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write ``null`` for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
