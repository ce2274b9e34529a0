"""The retained heap's points, from a recording's snapshots marked right after full
collections (fakes of a recording: the live reader and the capture file are tested apart)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from gate.load import LoadOutcome
from gate.model import Frame, LoadSample, MemorySnapshot
from gate.observed import FullCollection
from gate.recording import Recorded, Timing
from gate.recording.capture_file import StackLiveBytes
from gate.recording.live.recorder import LiveRecorder
from gate.run.retained import NONE, full_collections, retained_points
from gate.service.interpreter import AGENT

AGENT_STACK = (Frame("_census", str(AGENT), 1),)
SERVICE = (Frame("handle", "app.py", 10),)


class Recording:
    """A recording whose agent holds ``agent`` of each snapshot's heap."""

    def __init__(self, snapshots: list[MemorySnapshot], agent: int) -> None:
        self._snapshots, self._agent = snapshots, agent

    def snapshots(self) -> list[MemorySnapshot]:
        return self._snapshots

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        yield StackLiveBytes(AGENT_STACK, tuple(self._agent for _ in indexes))
        yield StackLiveBytes(SERVICE, tuple(self._snapshots[i].heap - self._agent for i in indexes))


LOAD = LoadOutcome(
    started_at=100.0,
    warmup_done_at=101.0,
    ended_at=110.0,
    samples=tuple(LoadSample(100.0 + t, 100 * t, 0) for t in range(11)),
    stop_reason="requests",
    endpoints=(),
)


def snapshots() -> list[MemorySnapshot]:
    """A poll every 0.5 s from 99 s to 111 s; those at whole seconds right after one."""
    return [
        MemorySnapshot(t=99 + i / 2, rss=0, heap=1_000_000 + 10 * i, retained=i % 2 == 0)
        for i in range(25)
    ]


def test_the_points_are_the_retained_snapshots_in_the_load_out_of_the_census() -> None:
    mine = snapshots()
    collections = {7: [FullCollection(t=s.t - 0.05, pause=0.02, forced=True) for s in mine]}
    live = Recording(mine, agent=500)
    read_live = LiveRecorder.timing
    censuses = {7: [(104.9, 105.1)]}
    kept = retained_points([Recorded(7, "", live)], [mine], LOAD, censuses, collections, read_live)
    # 100..110 s, whole seconds, without 105 s (the census's pause).
    assert [p.t for p in kept.points] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert [p.requests for p in kept.points] == [0, 100, 200, 300, 400, 600, 700, 800, 900, 1000]
    assert [mine[i].t for i in kept.indexes[0]] == [100 + p.t for p in kept.points]
    # Read live: the agent's own bytes are not the service's.
    assert [p.heap for p in kept.points] == [mine[i].heap - 500 for i in kept.indexes[0]]
    assert {(p.pause, p.forced) for p in kept.points} == {(0.02, True)}
    # From a capture file (stamped in the service), its snapshots' heaps are as they are.
    recorded = [Recorded(7, "capture.bin", live)]
    from_file = retained_points(recorded, [mine], LOAD, {}, collections, Timing())
    assert [p.heap for p in from_file.points] == [mine[i].heap for i in from_file.indexes[0]]


def worker(first: float, every: float, per_second: int, base: int) -> list[MemorySnapshot]:
    """A worker's polls every 0.25 s from 99 s to 111 s, retained from ``first`` on every
    ``every`` seconds; its heap grows by ``per_second`` bytes a second."""
    return [
        MemorySnapshot(
            t=99 + i / 4,
            rss=0,
            heap=base + int(per_second * (99 + i / 4 - 100)),
            retained=(99 + i / 4) >= first and ((99 + i / 4 - first) / every).is_integer(),
        )
        for i in range(49)
    ]


def test_a_service_that_forks_sums_its_processes_at_the_busiest_ones_collections() -> None:
    # A master that collects rarely and keeps its heap; two workers at times of their own,
    # one keeping 300 bytes a second (3 per request), the other nothing.
    master = worker(100.0, 5.0, 0, 5_000_000)
    leaking = worker(100.25, 0.5, 300, 2_000_000)
    clean = worker(100.5, 1.0, 0, 3_000_000)
    mine = [master, leaking, clean]
    processes = [Recorded(pid, "", Recording(s, 0)) for pid, s in zip((1, 2, 3), mine, strict=True)]
    kept = retained_points(processes, mine, LOAD, {}, {}, LiveRecorder.timing)
    # Where each has points on both sides: 100.5 s to 109.5 s (the clean one's first and
    # last), at the leaking worker's collections, the others read in between.
    assert [p.t for p in kept.points] == [0.75 + n / 2 for n in range(18)]
    assert [p.heap for p in kept.points] == [10_000_000 + 300 * (p.t) for p in kept.points]
    # Each process's sites are read at its last retained snapshot at or before each point.
    for snapshots, indexes in zip(mine, kept.indexes, strict=True):
        at = [snapshots[i].t for i in indexes]
        assert all(s.retained for s in (snapshots[i] for i in indexes))
        assert all(a <= 100 + p.t < a + 5 for a, p in zip(at, kept.points, strict=True))
    assert kept.indexes[1] == [i for i, s in enumerate(leaking) if s.retained and s.t <= 109.25][1:]


def test_a_worker_that_spans_too_little_of_the_load_leaves_the_service_none() -> None:
    # Started at 106 s (a worker recycled midway): 4 s of the 9 measured.
    early = worker(100, 1, 0, 0)
    late = [s if s.t >= 106 else dataclasses.replace(s, retained=False) for s in early]
    processes = [Recorded(1, "", Recording(early, 0)), Recorded(2, "", Recording(late, 0))]
    assert retained_points(processes, [early, late], LOAD, {}, {}, LiveRecorder.timing) is NONE
    # And a process with a single retained point cannot be read between two.
    once = [dataclasses.replace(s, retained=s.t == 105) for s in early]
    processes = [Recorded(1, "", Recording(early, 0)), Recorded(2, "", Recording(once, 0))]
    assert retained_points(processes, [early, once], LOAD, {}, {}, LiveRecorder.timing) is NONE


def test_the_collections_of_the_measured_phase_and_the_share_of_the_most_held() -> None:
    collections = {
        7: [FullCollection(100.5, 0.5, True), *(FullCollection(t, 0.1, True) for t in (102, 104))],
        8: [FullCollection(103, 0.2, True), FullCollection(106, 0.05, False)],
    }
    summary = full_collections(collections, LOAD, unread=2)
    assert (summary.forced, summary.service, summary.unread) == (3, 1, 2)
    assert (summary.median_pause_s, summary.max_pause_s) == (0.1, 0.2)
    assert summary.share == round(0.2 / 9, 4)  # of the 9 s after the warm-up
