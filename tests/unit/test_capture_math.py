from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from gate.capture import _live_at, live_bytes_at

NEVER = np.iinfo(np.int64).max


def test_intervals_are_alive_from_allocation_to_just_before_deallocation() -> None:
    # allocated before snapshot 1, freed before 3: alive at 1 and 2.
    # allocated before snapshot 2, never freed: alive from 2 on.
    starts = np.array([1, 2])
    ends = np.array([3, NEVER])
    sizes = np.array([100, 7])
    live = live_bytes_at(starts, ends, sizes, np.array([0, 1, 2, 3, 9]))
    assert live.tolist() == [0, 100, 107, 7, 7]


def test_memray_intervals_never_freed_stay_alive() -> None:
    intervals = [
        SimpleNamespace(allocated_before_snapshot=0, deallocated_before_snapshot=None, n_bytes=64),
        SimpleNamespace(allocated_before_snapshot=3, deallocated_before_snapshot=4, n_bytes=1000),
    ]
    assert _live_at(intervals, np.array([0, 2, 3, 4, 10**6])).tolist() == [64, 64, 1064, 64, 64]


def test_empty_intervals_give_zero() -> None:
    empty = np.array([], dtype=np.int64)
    assert live_bytes_at(empty, empty, empty, np.array([0, 5])).tolist() == [0, 0]
