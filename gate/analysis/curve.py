"""Put memory on a requests axis: snapshots and process samples against requests served.

Time is a poor x-axis on shared machines (throughput varies from run to run); requests
completed are comparable across runs. The load timeline maps one onto the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from gate.model import Curve, CurvePoint, LoadSample, MemorySnapshot

MAX_POINTS = 200
UNCOVERED_SHARE = 0.05
"""The share of the measured requests the capture may miss at the end of the load,
beyond those served within the capture's own spacing of snapshots (memray takes one
every 10 ms; on a long capture the reader keeps every n-th, so that in an hour's soak
they are seconds apart). Missing more means the capture stopped early: a share of the
requests, not seconds, so that a short load cut in half is as surely refused as a long
one."""
PROCESS_END_SLACK_S = 1.0
"""How long after a forked process's last snapshot (beyond its spacing of snapshots) it
still counts as running."""


class NotEnoughData(ValueError):
    """Too few snapshots fell inside the load to draw a curve."""


def requests_at(times: Sequence[float] | np.ndarray, timeline: Sequence[LoadSample]) -> np.ndarray:
    """Requests completed at each time, interpolated linearly on the timeline.

    Before the first sample it is that sample's count (0 at the start of the load);
    after the last, the last sample's.
    """
    xs = np.fromiter((s.t for s in timeline), dtype=float, count=len(timeline))
    ys = np.fromiter((s.requests for s in timeline), dtype=float, count=len(timeline))
    return np.asarray(np.interp(np.asarray(times, dtype=float), xs, ys), dtype=float)


def with_rss(curve: Curve, samples: Sequence[tuple[float, int]]) -> Curve:
    """The curve with each point's RSS taken from ``samples`` (``(t, bytes)``, ``t``
    relative to the load's start like the points'), linearly interpolated."""
    if len(samples) < 2:
        return curve
    ts = np.array([t for t, _ in samples], dtype=float)
    values = np.array([v for _, v in samples], dtype=float)
    at = np.interp([p.t for p in curve.points], ts, values)
    points = tuple(
        dataclasses.replace(p, rss=round(v)) for p, v in zip(curve.points, at, strict=True)
    )
    return dataclasses.replace(curve, points=points)


def build_curve(
    snapshots: Sequence[MemorySnapshot],
    timeline: Sequence[LoadSample],
    *,
    load_start: float,
    load_end: float,
    warmup_requests: int,
    max_points: int = MAX_POINTS,
    exclude: Sequence[tuple[float, float]] = (),
    late: float = 0.0,
) -> tuple[Curve, list[int]]:
    """The memory curve from the load's start to its end, and the snapshot index of each point.

    Points are real snapshots, chosen evenly spaced in requests (at most ``max_points``);
    the first snapshot at or past the warm-up and the last one of the load are always
    points. ``timeline`` times are absolute like the snapshots'; the curve's ``t`` is
    relative to ``load_start``. No point is taken in an ``exclude`` window (``(from,
    to)``, absolute: a census inside the service ran then).

    No point is taken after ``load_end`` (when the users were told to stop): the service
    then frees what their connections held, a drop that is no part of the load's curve.
    The last snapshot inside may come up to ``late`` seconds later than the snapshots'
    usual spacing allows (read live, one slow poll and the pause after it) before the
    capture counts as stopped early.
    """
    times = np.fromiter((s.t for s in snapshots), dtype=float, count=len(snapshots))
    inside = np.flatnonzero((times >= load_start) & (times <= load_end) & _outside(times, exclude))
    if len(inside) < 2:
        raise NotEnoughData(
            f"only {len(inside)} memory snapshot(s) fell inside the load's"
            f" {load_end - load_start:.1f} s"
        )
    last = float(times[inside[-1]])
    allowed = load_end - spacing(times) - late
    at_last, at_end, spaced = requests_at([last, load_end, allowed], timeline)
    missing = at_end - at_last
    measured = max(at_end - warmup_requests, 1.0)
    if missing > (at_end - spaced) + UNCOVERED_SHARE * measured:
        raise NotEnoughData(
            f"the capture ends {load_end - last:.1f} s before the load did ({missing:,.0f}"
            f" requests, {missing / measured:.0%} of those measured, not covered)"
        )
    reqs = requests_at(times[inside], timeline)
    if np.count_nonzero(reqs >= warmup_requests) < 2:
        raise NotEnoughData("fewer than 2 memory snapshots fell after the warm-up")
    targets = np.linspace(0.0, reqs[-1], max_points)
    chosen = set(np.searchsorted(reqs, targets, side="left").clip(0, len(inside) - 1).tolist())
    chosen.add(len(inside) - 1)
    warm = int(np.searchsorted(reqs, warmup_requests, side="left"))
    if warm < len(inside):
        chosen.add(warm)
    order = sorted(chosen)
    points = tuple(
        CurvePoint(
            requests=round(float(reqs[i]), 1),
            t=round(float(times[inside[i]] - load_start), 3),
            heap=snapshots[inside[i]].heap,
            rss=snapshots[inside[i]].rss,
        )
        for i in order
    )
    warmup_index = order.index(warm) if warm < len(inside) else len(order) - 1
    curve = Curve(
        points=points,
        warmup_requests=warmup_requests,
        warmup_index=warmup_index,
        ends_at_stop=True,
    )
    return curve, [int(inside[i]) for i in order]


def snapshot_indexes(
    snapshots: Sequence[MemorySnapshot],
    at: Sequence[float],
    slack: float = PROCESS_END_SLACK_S,
    exclude: Sequence[tuple[float, float]] = (),
) -> list[int]:
    """For each time in ``at`` (absolute, like the snapshots'), the index of the last
    snapshot at or before it, none in an ``exclude`` window; -1 where the process was
    not running: before its first snapshot, or more than ``slack`` seconds (beyond its
    usual spacing of snapshots) after its last."""
    when = np.asarray(at, dtype=float)
    if not snapshots:
        return [-1] * len(when)
    times = np.fromiter((s.t for s in snapshots), dtype=float, count=len(snapshots))
    kept = np.flatnonzero(_outside(times, exclude))
    if not len(kept):
        return [-1] * len(when)
    found = np.searchsorted(times[kept], when, side="right") - 1
    indexes = np.where(found >= 0, kept[found.clip(0)], -1)
    indexes[when > times[-1] + slack + spacing(times)] = -1
    return [int(i) for i in indexes]


def _outside(times: np.ndarray, windows: Sequence[tuple[float, float]]) -> np.ndarray:
    """Whether each time falls outside every window (``(from, to)``, inclusive)."""
    keep = np.ones(len(times), dtype=bool)
    for start, end in windows:
        keep &= (times < start) | (times > end)
    return keep


def spacing(times: np.ndarray) -> float:
    """The usual time between snapshots (the median gap), 0 for fewer than two."""
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def with_heaps(curve: Curve, heaps: Sequence[Sequence[int]]) -> Curve:
    """The curve with each point's heap the sum of ``heaps`` (one series per process)."""
    total = np.sum(np.asarray(heaps, dtype=np.int64), axis=0)
    points = tuple(
        dataclasses.replace(p, heap=int(h)) for p, h in zip(curve.points, total, strict=True)
    )
    return dataclasses.replace(curve, points=points)


def summed_at_collections(
    series: Sequence[tuple[np.ndarray, np.ndarray]], least_span: float = 0.0
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Several processes' heaps right after their own full collections (``(times,
    heaps)`` each, times increasing), summed: at the times of the process that collected
    most often over the span where every one has points on both sides, each other read
    on the straight line between its own two collections around that time (its retained
    heap grows by what it keeps, so the line is what it kept meanwhile). The times, the
    sums, and which process gave the times; ``None`` when a process has fewer than two
    points, or the span is shorter than ``least_span`` seconds or holds none."""
    if not series or any(len(at) < 2 for at, _ in series):
        return None
    start = max(float(at[0]) for at, _ in series)
    end = min(float(at[-1]) for at, _ in series)
    if end - start < least_span:
        return None
    inside = [(at >= start) & (at <= end) for at, _ in series]
    grid = max(range(len(series)), key=lambda n: int(inside[n].sum()))
    times = series[grid][0][inside[grid]]
    if not len(times):
        return None
    heaps = sum((np.interp(times, at, heap) for at, heap in series), np.zeros(len(times)))
    return times, heaps, grid
