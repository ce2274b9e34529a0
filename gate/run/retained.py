"""The retained heap: the heap right after each full collection of the garbage collector,
read from the points memray gave (live: a poll the agent's marker vouched for; from a
file: the first snapshot after the collection's end), and what the collections cost.

Each process of a prefork service collects at times of its own. The service's retained
heap is then their sum at the times one of them collected, each of the others read
between its own two collections around that time (its retained heap grows by what it
keeps, so a straight line between two of its points is what it kept meanwhile), over the
time every one of them has points on both sides of.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from gate.analysis.curve import requests_at, summed_at_collections
from gate.load import LoadOutcome
from gate.model import MemorySnapshot, RetainedPoint
from gate.observed import FullCollection, FullCollections
from gate.recording import Recorded, Recording, Timing
from gate.recording.capture_file import StackLiveBytes
from gate.service.interpreter import without_agent

SPANNED = 0.5
"""A service of several processes has a retained heap only where every one of them has
points on both sides, and only if that time covers at least this share of the measured
phase (a worker recycled or started midway leaves too little: the heap is then judged on
every point)."""


@dataclasses.dataclass(frozen=True)
class Kept:
    """The retained heap's points, and each recording's snapshot at each of them (of a
    service of several processes: its last retained snapshot at or before the point)."""

    points: tuple[RetainedPoint, ...]
    indexes: tuple[list[int], ...]


NONE = Kept((), ())


@dataclasses.dataclass(frozen=True)
class _Own:
    """One process's retained snapshots during the load: when, their heaps, which."""

    at: np.ndarray
    heaps: np.ndarray
    indexes: list[int]
    events: list[FullCollection]


def retained_points(
    recordings: Sequence[Recorded],
    snapshots: Sequence[Sequence[MemorySnapshot]],
    outcome: LoadOutcome,
    censuses: dict[int, list[tuple[float, float]]],
    collections: dict[int, list[FullCollection]],
    timing: Timing,
) -> Kept:
    """The service's heap right after each full collection during the load, out of the
    census's pauses (:data:`NONE` if a process has too few such points)."""
    owns = [
        _own(
            r.recording, mine, outcome, censuses.get(r.pid, ()), collections.get(r.pid, []), timing
        )
        for r, mine in zip(recordings, snapshots, strict=True)
    ]
    if not owns or any(len(own.indexes) < (1 if len(owns) == 1 else 2) for own in owns):
        return NONE
    if len(owns) == 1:
        at, heaps, grid = owns[0].at, owns[0].heaps, 0
    else:
        measured = outcome.ended_at - (outcome.warmup_done_at or outcome.started_at)
        series = [(own.at, own.heaps) for own in owns]
        summed = summed_at_collections(series, least_span=SPANNED * measured)
        if summed is None:
            return NONE
        at, heaps, grid = summed
    indexes = tuple(
        [own.indexes[int(n)] for n in np.searchsorted(own.at, at, side="right") - 1] for own in owns
    )
    events = owns[grid].events
    ends = np.asarray([c.t for c in events], dtype=float)
    points = []
    served = requests_at(at.tolist(), outcome.samples).tolist()
    for t, r, heap in zip(at.tolist(), served, heaps.tolist(), strict=True):
        found = int(np.searchsorted(ends, t, side="right")) - 1
        event = events[found] if found >= 0 else None
        points.append(
            RetainedPoint(
                requests=round(r, 1),
                t=round(t - outcome.started_at, 3),
                heap=round(heap),
                pause=round(event.pause, 6) if event else 0.0,
                forced=event.forced if event else True,
            )
        )
    return Kept(tuple(points), indexes)


def _own(
    recording: Recording,
    mine: Sequence[MemorySnapshot],
    outcome: LoadOutcome,
    windows: Sequence[tuple[float, float]],
    events: list[FullCollection],
    timing: Timing,
) -> _Own:
    indexes = [
        i
        for i, s in enumerate(mine)
        if s.retained
        and outcome.started_at <= s.t <= outcome.ended_at
        and not any(a <= s.t <= b for a, b in windows)
    ]
    heaps = [mine[i].heap for i in indexes]
    if indexes and not timing.stamped_in_service:  # the agent's own (a census's) left out
        heaps = without_agent_heap(heaps, recording.live_bytes_by_stack(indexes))
    return _Own(
        np.asarray([mine[i].t for i in indexes], dtype=float),
        np.asarray(heaps, dtype=float),
        indexes,
        events,
    )


def after_collections(
    snapshots: Sequence[MemorySnapshot], collections: Sequence[FullCollection]
) -> list[MemorySnapshot]:
    """A capture file's snapshots, the first after each full collection's end marked as
    retained (memray takes one every 10 ms; a long capture's reader keeps fewer)."""
    times = np.fromiter((s.t for s in snapshots), dtype=float, count=len(snapshots))
    after = set(np.searchsorted(times, [c.t for c in collections], side="left").tolist())
    return [
        dataclasses.replace(s, retained=True) if i in after else s for i, s in enumerate(snapshots)
    ]


def full_collections(
    collections: dict[int, list[FullCollection]], outcome: LoadOutcome, unread: int = 0
) -> FullCollections:
    """The full collections of the measured phase, all processes together: how many, and
    what the agent's cost the service (the share in the process they held most)."""
    start = outcome.warmup_done_at or outcome.started_at
    span = max(outcome.ended_at - start, 1e-9)
    measured = {
        pid: [c for c in theirs if start <= c.t <= outcome.ended_at]
        for pid, theirs in collections.items()
    }
    forced = [c.pause for theirs in measured.values() for c in theirs if c.forced]
    share = max(
        (sum(c.pause for c in theirs if c.forced) / span for theirs in measured.values()),
        default=0.0,
    )
    return FullCollections(
        forced=len(forced),
        service=sum(1 for theirs in measured.values() for c in theirs if not c.forced),
        median_pause_s=round(float(np.median(forced)), 6) if forced else 0.0,
        max_pause_s=round(max(forced), 6) if forced else 0.0,
        share=round(share, 4),
        unread=unread,
    )


def without_agent_heap(heap: Sequence[int], stacks: Iterable[StackLiveBytes]) -> list[int]:
    """A process's heap at each point without what memgate's agent itself held then (a
    census's objects, chiefly). Read live, memgate stamps a point when it reads it and
    the stream may be behind the service: the agent's allocations are taken out of
    every point, wherever they land, not only out of the census's time."""
    agent = np.zeros(len(heap), dtype=np.int64)
    for read in stacks:
        if without_agent(read.stack) is None and read.stack:
            agent += np.asarray(read.live, dtype=np.int64)
    return [int(h - a) for h, a in zip(heap, agent, strict=True)]
