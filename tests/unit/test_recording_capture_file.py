"""Live bytes at chosen snapshots, from memray's allocation intervals."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.model import Frame
from gate.recording import capture_file as capture
from gate.recording.capture_file import by_python_stack, live_bytes_by_group, native_tail

NEVER = np.iinfo(np.int64).max


def live(groups, starts, ends, sizes, at, n_groups):
    arrays = [np.asarray(v, dtype=np.int64) for v in (groups, starts, ends, sizes, at)]
    return [row.tolist() for row in live_bytes_by_group(*arrays, n_groups)]


def test_intervals_are_alive_from_allocation_to_just_before_deallocation() -> None:
    # allocated before snapshot 1, freed before 3: alive at 1 and 2.
    # allocated before snapshot 2, never freed: alive from 2 on.
    assert live([0, 0], [1, 2], [3, NEVER], [100, 7], [0, 1, 2, 3, 9], 1) == [[0, 100, 107, 7, 7]]


def test_groups_are_summed_apart_and_in_order() -> None:
    got = live([1, 0, 1], [0, 3, 0], [NEVER, 4, 2], [64, 1000, 5], [0, 2, 3, 4], 3)
    assert got == [[0, 0, 1000, 0], [69, 64, 64, 64], [0, 0, 0, 0]]


def test_snapshots_asked_out_of_order_come_back_in_that_order() -> None:
    assert live([0], [2], [5], [10], [9, 2, 0, 4], 1) == [[0, 10, 0, 10]]


def test_no_intervals_give_zero() -> None:
    assert live([], [], [], [], [0, 5], 2) == [[0, 0], [0, 0]]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2500),  # group: more than one block of stacks
            st.integers(0, 30),
            st.integers(0, 12) | st.none(),  # snapshots alive; None: never freed
            st.integers(1, 10**6),
        ),
        max_size=60,
    ),
    st.lists(st.integers(0, 40), min_size=1, max_size=12),
)
def test_matches_counting_by_hand(intervals, at) -> None:
    n_groups = 2501
    intervals = [(g, s, NEVER if n is None else s + n, size) for g, s, n, size in intervals]
    expected = [[0] * len(at) for _ in range(n_groups)]
    for group, start, end, size in intervals:
        for j, snapshot in enumerate(at):
            if start <= snapshot < end:
                expected[group][j] += size
    columns = list(zip(*intervals, strict=True)) if intervals else [[], [], [], []]
    assert live(*columns, at, n_groups) == expected
    assert n_groups > capture.BLOCK


def test_a_snapshot_index_of_minus_one_has_nothing_alive() -> None:
    never = np.iinfo(np.int64).max
    arrays = [np.asarray(v, dtype=np.int64) for v in ([0], [0], [never], [100], [-1, 0, 3, -1])]
    assert [row.tolist() for row in live_bytes_by_group(*arrays, 1)] == [[0, 100, 100, 0]]


def _frames(*names: str) -> tuple[Frame, ...]:
    return tuple(Frame(name, f"{name}.py", 1) for name in names)


def test_the_native_tail_is_what_the_innermost_python_frame_called() -> None:
    python = [("handler", "app.py", 10), ("serve", "server.py", 5)]
    hybrid = [("keep", "leaky.c", 7), ("leak", "leaky.c", 20), *python[:1], ("eval", "", 0)]
    assert native_tail(hybrid, python) == (("keep", "leaky.c", 7), ("leak", "leaky.c", 20))
    assert native_tail(python, python) == ()  # allocated by the Python line itself
    assert native_tail(hybrid[:2], []) == tuple(hybrid[:2])  # a thread with no Python
    assert native_tail(hybrid[:2], python) == ()  # memray could not pair the stacks


def test_native_paths_are_summed_by_python_stack_keeping_the_one_that_grew() -> None:
    a, b = _frames("handler"), _frames("other")
    flat, growing = _frames("flat_c"), _frames("growing_c")
    merged = list(
        by_python_stack(
            [
                (a, flat, np.array([500, 500, 500])),
                (b, (), np.array([1, 2, 3])),
                (a, growing, np.array([0, 100, 200])),
                (a, (), np.array([10, 10, 10])),
            ]
        )
    )
    assert [m.stack for m in merged] == [a, b]
    assert merged[0].live == (510, 610, 710) and merged[0].native == growing
    assert merged[1].live == (1, 2, 3) and merged[1].native == ()
