"""A check's figures for the trend tools a team already runs: Bencher's Metric Format
(``memgate report --format bmf``, for ``bencher run --adapter json``) and
github-action-benchmark's ``customSmallerIsBetter`` JSON (``--format benchmark``). Both
carry the run as the checks saw it: growth per request with its 95% interval, and the
peaks; every figure is one where smaller is better."""

from __future__ import annotations

import json
from typing import Any

from gate.report.report import Report

_GROWTH = (("heap-growth", "heap"), ("rss-growth", "rss"))
"""Bencher measure slugs, and the run summary's trend each reads."""
_BYTES = (
    ("peak-heap", "peak_heap"),
    ("final-heap", "final_heap"),
    ("peak-rss", "peak_rss"),
    ("final-rss", "final_rss"),
)


def render_bmf(report: Report) -> str:
    """``{benchmark: {measure: {value, lower_value, upper_value}}}``: one benchmark, the
    scenario (``NAME`` or ``NAME/SERVICE``); growth in bytes per request, bounded by its
    interval, and peaks and final values in bytes."""
    run = report.current
    measures: dict[str, dict[str, float]] = {}
    for slug, name in _GROWTH:
        trend = getattr(run, name)
        measures[slug] = {"value": trend.slope, "lower_value": trend.low, "upper_value": trend.high}
    for slug, name in _BYTES:
        measures[slug] = {"value": float(getattr(run, name))}
    return json.dumps({report.result.scenario.key: measures}, indent=2) + "\n"


def render_benchmark_action(report: Report) -> str:
    """github-action-benchmark's ``customSmallerIsBetter`` list: ``name``, ``unit``,
    ``value``, and for growth the interval as ``range`` and its bounds in ``extra``."""
    run = report.current
    key = report.result.scenario.key
    out: list[dict[str, Any]] = []
    for slug, name in _GROWTH:
        trend = getattr(run, name)
        out.append(
            {
                "name": f"{key} {slug.replace('-', ' ')} per request",
                "unit": "B/request",
                "value": trend.slope,
                "range": f"± {(trend.high - trend.low) / 2:.4g}",
                "extra": f"95% interval [{trend.low:.4g}, {trend.high:.4g}]",
            }
        )
    for slug, name in _BYTES:
        out.append(
            {"name": f"{key} {slug.replace('-', ' ')}", "unit": "B", "value": getattr(run, name)}
        )
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"
