from __future__ import annotations

import numpy as np

from gate.capture import live_bytes_at

NEVER = np.iinfo(np.int64).max


def test_intervals_are_alive_from_allocation_to_just_before_deallocation() -> None:
    # allocated before snapshot 1, freed before 3: alive at 1 and 2.
    # allocated before snapshot 2, never freed: alive from 2 on.
    starts = np.array([1, 2])
    ends = np.array([3, NEVER])
    sizes = np.array([100, 7])
    live = live_bytes_at(starts, ends, sizes, np.array([0, 1, 2, 3, 9]))
    assert live.tolist() == [0, 100, 107, 7, 7]


def test_empty_intervals_give_zero() -> None:
    empty = np.array([], dtype=np.int64)
    assert live_bytes_at(empty, empty, empty, np.array([0, 5])).tolist() == [0, 0]
