"""Services that fork: each process's capture on the main one's curve points, summed."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from gate.analysis.curve import snapshot_indexes, with_heaps
from gate.analysis.sites import sum_by_stack
from gate.capture import live_bytes_by_group
from gate.errors import RunError
from gate.model import Curve, CurvePoint, Frame, MemorySnapshot
from gate.run.refusals import check_profiled
from gate.service import RawProcessSample

A = (Frame("f", "app.py", 1),)
B = (Frame("g", "app.py", 2),)


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


def test_a_snapshot_index_of_minus_one_has_nothing_alive() -> None:
    never = np.iinfo(np.int64).max
    arrays = [np.asarray(v, dtype=np.int64) for v in ([0], [0], [never], [100], [-1, 0, 3, -1])]
    assert [row.tolist() for row in live_bytes_by_group(*arrays, 1)] == [[0, 100, 100, 0]]


def test_heaps_of_the_processes_are_summed_point_by_point() -> None:
    points = tuple(CurvePoint(requests=r, t=r, heap=1, rss=5) for r in (0.0, 1.0, 2.0))
    curve = with_heaps(Curve(points, 0, 0), [[10, 20, 30], [0, 1, 2], [5, 5, 0]])
    assert [p.heap for p in curve.points] == [15, 26, 32]
    assert [p.rss for p in curve.points] == [5, 5, 5]


def test_the_same_stack_in_several_processes_is_one_site() -> None:
    merged = dict(sum_by_stack([[(A, [1, 2]), (B, [5, 5])], [(A, [10, 20])], []]))
    assert merged == {A: [11, 22], B: [5, 5]}


def test_one_process_is_passed_through() -> None:
    stream = [(A, (1, 2))]
    assert list(sum_by_stack([stream])) == stream


def tree(t: float, *pids: int) -> RawProcessSample:
    return RawProcessSample(t, 0, 0, 1, 1, len(pids), pids)


def test_workers_without_captures_are_refused() -> None:
    during = [tree(t, 1, 2, 3) for t in range(10)]
    with pytest.raises(RunError, match=r"2 more process.*follow_fork = true"):
        check_profiled(during, set(), follow_fork=False)
    with pytest.raises(RunError, match=r"pid 3\).*not spawn"):
        check_profiled(during, {2}, follow_fork=True)


def test_profiled_workers_and_brief_helpers_pass() -> None:
    # pid 9 lived for 2 of 10 samples (a helper command): not a worker left unprofiled.
    check_profiled([tree(t, 1, 2, 3, *([9] if t < 2 else [])) for t in range(10)], {2, 3}, True)
    check_profiled([tree(t, 1) for t in range(10)], set(), follow_fork=False)


def test_workers_restarted_one_after_another_count_together() -> None:
    # Each unprofiled worker lives for 3 of 12 samples; one is always there.
    during = [tree(t, 1, 100 + t // 3) for t in range(12)]
    with pytest.raises(RunError, match=r"4 more process"):
        check_profiled(during, set(), follow_fork=False)


def test_results_whose_per_process_or_gc_series_do_not_fit_the_curve_are_refused() -> None:
    import json

    from gate.errors import InputError
    from gate.model import GcPressure, ProcessCurve
    from gate.result import dumps, parse_result
    from tests.support import make_result

    base = make_result()
    n = len(base.curve.points)
    good = ProcessCurve(1, "capture.bin", True, (0,) * n, (0, n - 1), None)
    bad_cases = {
        "gc.seconds: 1 values": dataclasses.replace(
            base, gc=GcPressure((0,) * n, (0,) * n, (0.0,), 0.0, 0.0, 0.0)
        ),
        "process_curves.0.heap: 1 values": dataclasses.replace(
            base, process_curves=(dataclasses.replace(good, heap=(0,)),)
        ),
        "process_curves.0.running": dataclasses.replace(
            base, process_curves=(dataclasses.replace(good, running=(3, n)),)
        ),
    }
    for expected, result in bad_cases.items():
        with pytest.raises(InputError, match=re.escape(expected)):
            parse_result(json.loads(dumps(result)), source="r.json")
    fine = dataclasses.replace(base, process_curves=(good,))
    assert parse_result(json.loads(dumps(fine)), source="r.json").process_curves == (good,)
