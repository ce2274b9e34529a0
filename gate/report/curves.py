"""What the charts draw, every reporter alike: this run's curve and the newest compared
run's, the range of the compared runs' curves, and the history's limits, as lines of
bytes against requests (:class:`Line`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from gate.report.parts import heap_ends
from gate.report.report import Report
from gate.spacing import thin
from gate.units import quantity, size
from gate.verdict.history import history_limit


@dataclasses.dataclass(frozen=True)
class Line:
    """One curve to draw: memory against requests."""

    label: str
    requests: tuple[float, ...]
    values: tuple[float, ...]
    """Bytes."""


def lines(report: Report, metric: str, most: int = 400) -> list[Line]:
    """This run's ``heap`` or ``rss`` curve (thinned to ``most`` points) and, when the
    newest compared baseline run kept one, the baseline's."""
    points = thin(report.result.curve.points, most)
    out = [
        Line(
            "this run",
            tuple(p.requests for p in points),
            tuple(float(getattr(p, metric)) for p in points),
        )
    ]
    kept = thin(report.result.curve.retained, most)
    if metric == "heap" and kept:
        # The heap's sawtooth above; below, what survived each full collection.
        out.append(
            Line(
                "this run, right after full collections",
                tuple(p.requests for p in kept),
                tuple(float(p.heap) for p in kept),
            )
        )
    base = report.baseline
    if base is not None and base.curve:
        commit = (base.provenance.commit or "")[:7]
        out.append(
            Line(
                f"newest baseline run{f' (commit {commit})' if commit else ''}",
                tuple(c.requests for c in base.curve),
                tuple(float(getattr(c, metric)) for c in base.curve),
            )
        )
    return out


def history_range(report: Report, metric: str, points: int = 120) -> tuple[Line, Line] | None:
    """The lowest and the highest ``heap`` or ``rss`` of the compared runs' curves at
    each number of requests (as far as the shortest goes); ``None`` with fewer than
    two runs that kept their curve."""
    current = report.current.run_id  # compared with itself once accepted as the reference
    runs = [r for r in report.decision.compared if r.curve and r.run_id != current]
    if len(runs) < 2:
        return None
    series = [
        Line(
            "",
            tuple(c.requests for c in r.curve),
            tuple(float(getattr(c, metric)) for c in r.curve),
        )
        for r in runs
    ]
    grid, values = on_grid(series, points)
    label = f"range of the {len(runs)} baseline runs"
    lowest = tuple(float(v) for v in np.min(values, axis=0))
    highest = tuple(float(v) for v in np.max(values, axis=0))
    return Line(label, tuple(grid), lowest), Line(label, tuple(grid), highest)


def limit_lines(report: Report, metric: str, x_max: float) -> list[Line]:
    """The history's limits on ``heap`` or ``rss``, as the checks computed them: the
    peak's (level, over the measured phase it is judged on), and the growth rate's,
    drawn from this run's value where its steady state starts; none without compared
    runs."""
    runs = report.decision.compared
    if not runs:
        return []
    name = {"heap": "heap", "rss": "RSS"}[metric]
    peak = history_limit(f"peak {name}", runs)
    rate = history_limit(f"{name} growth per request", runs)
    curve = report.result.curve
    warm = float(curve.warmup_requests)
    steady = curve.points[report.result.analysis.steady.index]
    start = float(heap_ends(report.result)[0] if metric == "heap" else steady.rss)
    beside = " (a finding only beside the heap's)" if metric == "rss" else ""
    return [
        Line(f"peak {name} limit {size(peak)}", (warm, x_max), (peak, peak)),
        Line(
            f"{name} growth limit {quantity(rate, 'B/request')}{beside}",
            (steady.requests, x_max),
            (start, start + rate * (x_max - steady.requests)),
        ),
    ]


def on_grid(series: Sequence[Line], points: int) -> tuple[list[float], list[list[float]]]:
    """The lines resampled (linearly) at ``points`` evenly spaced request counts from 0
    to where the shortest line ends, so that they share one x-axis."""
    end = min(line.requests[-1] for line in series) or max(line.requests[-1] for line in series)
    grid = np.linspace(0.0, end, points)
    return (
        [float(x) for x in grid],
        [[float(v) for v in np.interp(grid, line.requests, line.values)] for line in series],
    )
