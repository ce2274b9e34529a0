from __future__ import annotations

import numpy as np
import pytest

from gate.analysis.curve import (
    NotEnoughData,
    build_curve,
    requests_at,
    snapshot_indexes,
    summed_at_collections,
    with_heaps,
)
from gate.model import Curve, CurvePoint, LoadSample, MemorySnapshot

T0 = 1_700_000_000.0


def timeline(rate: float = 100.0, seconds: int = 10) -> list[LoadSample]:
    """A load of ``rate`` requests per second, sampled every 0.5 s, in absolute time."""
    return [LoadSample(T0 + i / 2, int(rate * i / 2), 0) for i in range(2 * seconds + 1)]


def snapshots(
    every: float = 0.01, start: float = T0 - 1, end: float = T0 + 11
) -> list[MemorySnapshot]:
    """Heap = 1000 bytes per second since T0 (so 10 bytes a request at 100 req/s)."""
    times = np.arange(start, end, every)
    return [MemorySnapshot(float(t), 50_000_000, int(max(t - T0, 0) * 1000) + 4096) for t in times]


def test_requests_at_interpolates_and_clamps() -> None:
    line = [LoadSample(10.0, 0, 0), LoadSample(11.0, 100, 0), LoadSample(12.0, 100, 3)]
    assert requests_at([9.0, 10.5, 11.0, 11.7, 20.0], line).tolist() == [0, 50, 100, 100, 100]


def test_curve_keeps_the_load_window_on_a_requests_axis() -> None:
    curve, indexes = build_curve(
        snapshots(), timeline(), load_start=T0, load_end=T0 + 10, warmup_requests=200
    )
    points = curve.points
    assert 20 <= len(points) <= 202
    assert points[-1].requests == pytest.approx(1000, abs=2)
    assert [p.requests for p in points] == sorted(p.requests for p in points)
    # Evenly spaced in requests: no gap much wider than 1000 / 199.
    gaps = np.diff([p.requests for p in points])
    assert gaps.max() < 2 * 1000 / 199
    # The warm-up point is the first at or past 200 requests.
    warm = points[curve.warmup_index]
    assert warm.requests >= 200 and points[curve.warmup_index - 1].requests < 200
    # Heap grows 10 bytes per request along the curve.
    slope = (points[-1].heap - warm.heap) / (points[-1].requests - warm.requests)
    assert slope == pytest.approx(10, rel=0.05)
    # Each point is the snapshot its index names.
    snaps = snapshots()
    assert [snaps[i].heap for i in indexes] == [p.heap for p in points]


def test_short_captures_give_all_their_points() -> None:
    snaps = snapshots(every=1.0)
    curve, indexes = build_curve(
        snaps, timeline(), load_start=T0, load_end=T0 + 10, warmup_requests=0
    )
    assert len(curve.points) == 11
    assert curve.warmup_index == 0
    assert len(set(indexes)) == len(indexes)


def test_a_capture_that_stops_before_the_load_is_not_enough_data() -> None:
    with pytest.raises(NotEnoughData, match=r"the capture ends 4\.\d s before the load did"):
        build_curve(
            snapshots(end=T0 + 6),
            timeline(),
            load_start=T0,
            load_end=T0 + 10,
            warmup_requests=0,
        )


def test_a_short_load_whose_capture_stops_halfway_is_not_enough_data() -> None:
    # 1,500 requests in a second: half the load is half a second, under any fixed slack.
    with pytest.raises(NotEnoughData, match=r"0\.5 s before the load did \(7\d\d requests, 5\d%"):
        build_curve(
            snapshots(end=T0 + 0.5),
            timeline(rate=1500, seconds=1),
            load_start=T0,
            load_end=T0 + 1,
            warmup_requests=0,
        )
    curve, _ = build_curve(
        snapshots(end=T0 + 1.005),
        timeline(rate=1500, seconds=1),
        load_start=T0,
        load_end=T0 + 1,
        warmup_requests=0,
    )
    assert curve.points[-1].requests == pytest.approx(1500, abs=20)


def test_a_long_captures_sparse_snapshots_still_cover_the_load() -> None:
    # Snapshots 1.8 s apart (a long soak, strided by memray's reader); the last one is
    # 1.5 s before the load's end: the capture did not stop early.
    snaps = snapshots(every=1.8, start=T0 - 0.5, end=T0 + 9)
    assert T0 + 10 - snaps[-1].t == pytest.approx(1.5)
    curve, _ = build_curve(snaps, timeline(), load_start=T0, load_end=T0 + 10, warmup_requests=0)
    assert len(curve.points) == 5


def test_what_the_service_frees_once_the_users_stop_is_no_point_of_the_curve() -> None:
    """Read live, the last poll comes after the load's end, once the service has freed
    what its connections held (a drop of 150 KiB in the queue example's worker): the
    curve ends at the last snapshot of the load."""
    inside = [MemorySnapshot(T0 + i * 0.36, 0, 4096 + i * 1000) for i in range(28)]
    torn_down = [MemorySnapshot(T0 + 10.3, 0, 4096 - 150_000)]
    args = {"load_start": T0, "load_end": T0 + 10, "warmup_requests": 0}
    curve, _ = build_curve([*inside, *torn_down], timeline(), **args)
    assert len(curve.points) == len(inside) and curve.ends_at_stop
    assert curve.points[-1].heap == inside[-1].heap and curve.points[-1].t == pytest.approx(9.72)


def test_a_late_last_poll_is_allowed_for_but_a_reading_that_stopped_is_not() -> None:
    """Polls 0.36 s apart: a last one 1.7 s before the end is a slow poll when up to 1 s
    of lateness is allowed (read live), a capture that stopped when none is; one 8 s
    before the end is a reading that stopped, a poll after the end or not."""
    slow = [MemorySnapshot(T0 + i * 0.36, 0, 4096 + i * 1000) for i in range(24)]
    after = [MemorySnapshot(T0 + 10.3, 0, 4096)]
    args = {"load_start": T0, "load_end": T0 + 10, "warmup_requests": 0}
    curve, _ = build_curve([*slow, *after], timeline(), late=1.0, **args)
    assert curve.points[-1].t == pytest.approx(8.28)
    with pytest.raises(NotEnoughData, match=r"the capture ends 1\.7 s before the load did"):
        build_curve([*slow, *after], timeline(), **args)
    stopped = [MemorySnapshot(T0 + i * 0.25, 0, 4096) for i in range(9)]
    with pytest.raises(NotEnoughData, match=r"the capture ends 8\.0 s before the load did"):
        build_curve([*stopped, *after], timeline(), late=1.0, **args)


def test_no_snapshot_after_warmup_is_not_enough_data() -> None:
    with pytest.raises(NotEnoughData, match="fewer than 2 memory snapshots fell after the warm-up"):
        build_curve(snapshots(), timeline(), load_start=T0, load_end=T0 + 10, warmup_requests=5000)


def test_no_snapshots_inside_the_load_is_not_enough_data() -> None:
    with pytest.raises(NotEnoughData, match="only 0 memory snapshot"):
        build_curve(
            snapshots(start=T0 - 5, end=T0 - 1),
            timeline(),
            load_start=T0,
            load_end=T0 + 10,
            warmup_requests=0,
        )


# Services that fork: each process's snapshots at the main one's curve points, summed.


def snaps(*times: float) -> list[MemorySnapshot]:
    return [MemorySnapshot(t=t, rss=0, heap=int(t * 10)) for t in times]


def test_each_time_takes_the_last_snapshot_at_or_before_it() -> None:
    assert snapshot_indexes(snaps(10.0, 10.5, 11.0), [10.0, 10.7, 11.0, 11.9]) == [0, 1, 2, 2]


def test_times_outside_a_process_life_are_minus_one() -> None:
    # Started at 10 s, snapshots 0.5 s apart, the last at 11 s: before the first, and
    # past the slack and the spacing after the last, -1.
    assert snapshot_indexes(snaps(10.0, 10.5, 11.0), [9.0, 10.0, 11.5, 12.6], slack=1.0) == [
        -1,
        0,
        2,
        -1,
    ]
    assert snapshot_indexes([], [1.0, 2.0]) == [-1, -1]


def test_sparse_snapshots_of_a_long_capture_still_cover_its_end() -> None:
    # An hour's soak: memray's reader keeps every 180th snapshot, 1.8 s apart. The
    # last one can be up to that long before the load's end without the process having
    # stopped.
    times = [1000.0 + 1.8 * i for i in range(2000)]
    end = times[-1] + 1.7
    assert snapshot_indexes(snaps(*times), [times[0], end], slack=1.0) == [0, 1999]
    assert snapshot_indexes(snaps(*times), [end + 1.2], slack=1.0) == [-1]


def test_heaps_of_the_processes_are_summed_point_by_point() -> None:
    points = tuple(CurvePoint(requests=r, t=r, heap=1, rss=5) for r in (0.0, 1.0, 2.0))
    curve = with_heaps(Curve(points, 0, 0), [[10, 20, 30], [0, 1, 2], [5, 5, 0]])
    assert [p.heap for p in curve.points] == [15, 26, 32]
    assert [p.rss for p in curve.points] == [5, 5, 5]


def test_no_point_is_taken_while_a_census_ran() -> None:
    # A census from 3.0 to 3.4 s after the load's start: its objects doubled the heap.
    census = (T0 + 3.0, T0 + 3.4)
    raw = snapshots()
    spiked = [
        MemorySnapshot(s.t, s.rss, s.heap * 2 if census[0] <= s.t <= census[1] else s.heap)
        for s in raw
    ]
    curve, indexes = build_curve(
        spiked, timeline(), load_start=T0, load_end=T0 + 10, warmup_requests=200, exclude=[census]
    )
    assert not [p for p in curve.points if 3.0 <= p.t <= 3.4]
    assert all(census[0] > spiked[i].t or spiked[i].t > census[1] for i in indexes)
    heaps = np.array([p.heap for p in curve.points], dtype=float)
    assert np.all(np.diff(heaps) >= 0)  # no spike left: the heap only grows
    # Another process is read at its last snapshot before each point, none in its census.
    at = [T0 + 3.2, T0 + 3.5]
    assert snapshot_indexes(snaps(T0 + 2.9, T0 + 3.1, T0 + 3.45), at, exclude=[census]) == [0, 2]
    assert snapshot_indexes(snaps(T0 + 3.1), at, exclude=[census]) == [-1, -1]


def test_processes_retained_heaps_are_summed_at_the_busiest_ones_collections() -> None:
    # One collects every second and keeps 100 bytes a second; the other every 2.5 s,
    # flat at 1,000; a third has one point only, and nothing can be read between two.
    busy = (np.arange(0.0, 11.0), 500 + 100 * np.arange(0.0, 11.0))
    rare = (np.asarray([0.5, 3.0, 5.5, 8.0]), np.full(4, 1000.0))
    summed = summed_at_collections([busy, rare])
    assert summed is not None
    times, heaps, grid = summed
    assert grid == 0 and times.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert heaps.tolist() == [1500 + 100 * t for t in times.tolist()]
    assert summed_at_collections([busy, (np.asarray([4.0]), np.asarray([1.0]))]) is None
    assert summed_at_collections([busy, (np.asarray([20.0, 21.0]), np.ones(2))]) is None
