"""The recordings of a service's processes read on the load's timeline: the curve of
heap and RSS against requests (each process at the curve's points), the analysis of its
shape, the retained heap's points, and the allocation sites ranked by how surely they
grow. What differs between ways of recording is the recorder's :class:`Timing`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from gate.analysis.curve import (
    build_curve,
    requests_at,
    snapshot_indexes,
    with_heaps,
    with_rss,
)
from gate.analysis.shape import analyse_curve, steady_growth, steady_retained
from gate.analysis.sites import rank_sites, sum_by_stack
from gate.analysis.trend import TooFewPoints, blocks, trend
from gate.load import LoadOutcome
from gate.model import Curve, Frame, MemorySnapshot, ProcessSample, Site
from gate.observed import FullCollection, ProcessCurve
from gate.recording import Recorded, Timing
from gate.recording.capture_file import StackLiveBytes
from gate.run.retained import after_collections, retained_points, without_agent_heap
from gate.scenario import Scenario
from gate.service.interpreter import without_agent
from gate.service.native import Libraries
from gate.shapes import Analysis, Trend


@dataclasses.dataclass(frozen=True)
class Profiled:
    """One profiled process (the service's main process, or a fork), read at the
    curve's points."""

    pid: int
    capture: str
    """Its capture file's name; empty when it was read live."""
    indexes: list[int]
    """Its snapshot at each curve point; -1 where it was not running."""
    heap: list[int]
    """Its heap at each curve point; 0 where it was not running."""
    ended: bool = False
    """Its last snapshot came before the load's end: it ended while the load ran."""
    lifetime: Trend | None = None
    """Its heap's growth over the measured part of its life, from all its snapshots."""


@dataclasses.dataclass(frozen=True)
class Read:
    """What the captures gave."""

    curve: Curve
    analysis: Analysis
    sites: tuple[Site, ...]
    processes: list[Profiled]
    snapshots: int
    """Snapshots in the main capture."""


def read_recordings(
    scenario: Scenario,
    recordings: Sequence[Recorded],
    outcome: LoadOutcome,
    warmup_done: int,
    samples: tuple[ProcessSample, ...],
    library_roots: Sequence[str],
    timing: Timing,
    censuses: dict[int, list[tuple[float, float]]],
    libraries: Sequence[str] = (),
    collections: dict[int, list[FullCollection]] | None = None,
) -> Read:
    """Read the processes' ``recordings`` (``(pid, capture file name, recording)``, the
    main process's first) on the load's timeline.

    The curve's points are the snapshots of the process with the most of them during the
    load among those that ran through it (read live, an idle prefork master is read less
    often than its busy workers: a reading costs by the stacks alive, not by the work
    done; a worker recycled midway, or started midway, spans only part of the load);
    every other process is read at those points, each at its last snapshot before.
    No process is read while it took a census (``censuses``: when, by pid). Native
    frames are named by the ``libraries`` the service had loaded."""
    collections = collections or {}
    snapshots = [
        after_collections(r.recording.snapshots(), collections.get(r.pid, []))
        if timing.stamped_in_service
        else r.recording.snapshots()
        for r in recordings
    ]
    after_end = timing.after_end_s
    during = [
        sum(1 for s in theirs if outcome.started_at <= s.t <= outcome.ended_at + after_end)
        if theirs and theirs[0].t <= outcome.started_at and theirs[-1].t >= outcome.ended_at
        else 0
        for theirs in snapshots
    ]
    if not max(during):  # none spans the load: the one read most while it ran
        during = [
            sum(1 for s in theirs if outcome.started_at <= s.t <= outcome.ended_at + after_end)
            for theirs in snapshots
        ]
    reference = during.index(max(during)) if max(during) else 0
    curve, indexes = build_curve(
        snapshots[reference],
        outcome.samples,
        load_start=outcome.started_at,
        load_end=outcome.ended_at,
        warmup_requests=warmup_done,
        late=timing.late_s,
        exclude=censuses.get(recordings[reference][0], ()),
    )
    at = [outcome.started_at + p.t for p in curve.points]
    processes = []
    for number, ((pid, name, recording), theirs) in enumerate(
        zip(recordings, snapshots, strict=True)
    ):
        windows = censuses.get(pid, ())
        chosen = indexes if number == reference else snapshot_indexes(theirs, at, exclude=windows)
        heap = [theirs[i].heap if i >= 0 else 0 for i in chosen]
        ended = bool(theirs) and outcome.started_at <= theirs[-1].t < outcome.ended_at
        lifetime = _lifetime(theirs, outcome, windows) if number else None
        if not timing.stamped_in_service:  # the agent's allocations in every point
            heap = without_agent_heap(heap, recording.live_bytes_by_stack(chosen))
        processes.append(Profiled(pid, name, chosen, heap, ended, lifetime))
    curve = with_heaps(curve, [p.heap for p in processes])
    curve = with_rss(curve, [(s.t, s.rss_anon) for s in samples])
    kept = retained_points(recordings, snapshots, outcome, censuses, collections, timing)
    curve = dataclasses.replace(curve, retained=kept.points)
    analysis = analyse_curve(curve)
    retained_index = steady_retained(curve, analysis.steady)
    judged = retained_index is not None
    natives: dict[tuple[Frame, ...], StackLiveBytes] = {}
    stacks = sum_by_stack(
        [
            _service_stacks(
                recording.live_bytes_by_stack(
                    [*process.indexes, *(kept.indexes[number] if judged else ())]
                ),
                natives,
            )
            for number, ((_, _, recording), process) in enumerate(
                zip(recordings, processes, strict=True)
            )
        ]
    )
    named = Libraries(libraries, own=[str(scenario.service_cwd)])
    retained_requests = [p.requests for p in curve.retained]
    sites = rank_sites(
        stacks,
        requests=[p.requests for p in curve.points],
        steady_index=analysis.steady.index,
        library_roots=library_roots,
        base=str(scenario.service_cwd),
        native=lambda stack: named.describe(natives[stack].native) if stack in natives else (),
        retained=(retained_requests, retained_index) if retained_index is not None else None,
    )
    return Read(curve, analysis, sites, processes, len(snapshots[0]))


def _lifetime(
    snapshots: Sequence[MemorySnapshot],
    outcome: LoadOutcome,
    censuses: Sequence[tuple[float, float]] = (),
) -> Trend | None:
    """A process's heap growth per request served by the service, over the measured part
    of its life (from the warm-up's end, or its start, to the load's end, or its own),
    from every snapshot of it: a worker recycled between two points of the curve is
    judged on what it kept while it ran."""
    start = outcome.warmup_done_at or outcome.started_at
    mine = [
        s
        for s in snapshots
        if start <= s.t <= outcome.ended_at and not any(a <= s.t <= b for a, b in censuses)
    ]
    if len(mine) < 2:
        return None
    requests = requests_at([s.t for s in mine], outcome.samples)
    try:
        return steady_growth(requests, np.asarray([s.heap for s in mine], dtype=float))
    except TooFewPoints:
        return None


def _service_stacks(
    stacks: Iterable[StackLiveBytes],
    natives: dict[tuple[Frame, ...], StackLiveBytes],
) -> Iterator[tuple[tuple[Frame, ...], tuple[int, ...]]]:
    """The stacks as the service's code made them (memgate's agent left out); into
    ``natives``, of the stacks that have native frames, the process's that grew most."""
    for read in stacks:
        stack = without_agent(read.stack)
        if stack is not None:
            if read.native:
                kept = natives.get(stack)
                if kept is None or _grew(read.live) > _grew(kept.live):
                    natives[stack] = read
            yield stack, read.live


def _grew(live: Sequence[int]) -> tuple[int, int]:
    return (live[-1] - live[0], live[-1]) if live else (0, 0)


def curves_of_processes(
    processes: list[Profiled], curve: Curve, steady: int
) -> tuple[ProcessCurve, ...]:
    """Each profiled process's heap on the curve, with its growth when it ran through
    the whole steady state (a worker restarted midway has none)."""
    requests = [p.requests for p in curve.points]
    out = []
    for number, process in enumerate(processes):
        running = [i for i, index in enumerate(process.indexes) if index >= 0]
        if not running:
            continue
        first, last = running[0], running[-1]
        whole = first <= steady and last == len(process.indexes) - 1
        heap = process.heap
        try:
            growth = trend(*blocks(requests[steady:], heap[steady:])) if whole else None
        except TooFewPoints:  # a steady state too short to tell a process's own growth
            growth = None
        out.append(
            ProcessCurve(
                pid=process.pid,
                capture=process.capture,
                main=number == 0,
                heap=tuple(heap),
                running=(first, last),
                trend=growth,
                ended=process.ended,
                lifetime=process.lifetime,
            )
        )
    return tuple(out)
