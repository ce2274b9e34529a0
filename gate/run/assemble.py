"""One service's result, assembled from its captures, its process samples and the load.

memray's captures (the main process's, and each profiled fork's) are read at the points
of the load's timeline: the curve of heap and RSS against requests, the analysis of its
shape, and the allocation sites ranked by how surely they grow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import time
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from gate import provenance
from gate.agent_files import read_censuses, read_full_collections, read_gc_samples
from gate.analysis.curve import (
    NotEnoughData,
    build_curve,
    requests_at,
    snapshot_indexes,
    with_heaps,
    with_rss,
)
from gate.analysis.gc import gc_pressure
from gate.analysis.resources import resource_growth
from gate.analysis.retention import CensusRecord, retention
from gate.analysis.shape import (
    NotEnoughPoints,
    analyse_curve,
    steady_growth,
    steady_retained,
)
from gate.analysis.sites import rank_sites, sum_by_stack
from gate.analysis.trend import TooFewPoints, blocks, trend
from gate.errors import RunError
from gate.interpreter import without_agent
from gate.load import LoadOutcome
from gate.model import (
    Curve,
    Frame,
    LoadSample,
    LoadStats,
    MemorySnapshot,
    ProcessSample,
    RunResult,
    ScenarioRef,
    Site,
)
from gate.native import Libraries
from gate.observed import FullCollection, ProcessCurve
from gate.outputs import LOAD_LOG, LOAD_TIMELINE
from gate.process_tree import RawProcessSample
from gate.recording import Recorded, Timing
from gate.recording.capture_file import StackLiveBytes, UnreadableCapture
from gate.result import SCHEMA_VERSION
from gate.run.refusals import check_profiled
from gate.run.retained import (
    after_collections,
    full_collections,
    retained_points,
    without_agent_heap,
)
from gate.scenario import Scenario, stored_settings
from gate.service import ServiceProcess
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
class _Read:
    """What the captures gave."""

    curve: Curve
    analysis: Analysis
    sites: tuple[Site, ...]
    processes: list[Profiled]
    snapshots: int
    """Snapshots in the main capture."""


def build_result(
    scenario: Scenario,
    service: ServiceProcess,
    outcome: LoadOutcome,
    started_at: datetime.datetime,
    progress: bool,
) -> RunResult:
    """One service's result from its captures and samples (``progress``: show the
    reading of a capture file's progress)."""
    read_started = time.perf_counter()
    timeline = outcome.samples
    warmup_done = _requests_when(timeline, outcome.warmup_done_at)
    load = _load_stats(outcome, warmup_done)
    if load.measured_nothing:  # refused in more words before; never written as a result
        raise RunError(f"the load measured nothing: {load.measured_nothing}")
    during = [s for s in service.samples() if outcome.started_at <= s.t <= outcome.ended_at]
    samples = _process_samples(during, timeline, outcome.started_at)
    recorder = service.recorder
    assert recorder is not None, "an unprofiled service has no result"
    timing = recorder.timing
    try:
        with contextlib.ExitStack() as opened:
            recordings = recorder.open(service.pid, opened, progress)
            collections = (
                read_full_collections(service.census_folder)
                if scenario.profile.retained_heap
                else {}
            )
            forks = {r.pid for r in recordings[1:]}
            check_profiled(during, forks, scenario.profile.follow_fork, service.who)
            starts, failed_starts = read_censuses(service.census_folder, "start")
            ends, failed_ends = read_censuses(service.census_folder, "end")
            problems = census_problems(
                scenario.profile.census,
                service.pid,
                starts,
                ends,
                {"start": failed_starts, "end": failed_ends},
            )
            read = _read(
                scenario,
                recordings,
                outcome,
                warmup_done,
                samples,
                service.python.library_roots,
                timing,
                _census_windows([*starts, *ends], timing),
                service.libraries,
                collections,
            )
    except UnreadableCapture as exc:
        raise RunError(str(exc)) from None
    except (NotEnoughData, NotEnoughPoints, TooFewPoints) as exc:
        raise RunError(
            f"{recorder.describe()}: {exc} ({load.measured_requests:,} requests measured in"
            f" {load.measured_duration_s:.1f} s: too short to read; ask for more with"
            " --requests or --duration)"
        ) from None
    curve, analysis = read.curve, read.analysis
    process_curves = (
        _process_curves(read.processes, curve, analysis.steady.index) if len(recordings) > 1 else ()
    )

    up = "../" if scenario.service_name else ""  # the load's files are the scenario's
    return RunResult(
        schema_version=SCHEMA_VERSION,
        scenario=ScenarioRef(
            name=scenario.name,
            path=str(scenario.path),
            sha256=scenario.sha256,
            service=scenario.service_name,
        ),
        settings=stored_settings(scenario.settings),
        provenance=provenance.collect(
            started_at,
            scenario.service_cwd,
            service.python.python,
            service.python.distributions or None,
            service.python.packages or None,
        ),
        load=load,
        curve=curve,
        analysis=analysis,
        sites=read.sites,
        timeline=tuple(
            LoadSample(round(s.t - outcome.started_at, 3), s.requests, s.failures) for s in timeline
        ),
        processes=samples,
        capture=recorder.capture_info(recordings, read.snapshots, read_started, outcome.ended_at),
        files={
            "service_log": service.log_path.name,
            "load_log": f"{up}{LOAD_LOG}",
            "load_timeline": f"{up}{LOAD_TIMELINE}",
        },
        resources=resource_growth(samples, analysis.steady.requests),
        gc=gc_pressure(
            read_gc_samples(service.gc_prefix), curve, outcome.started_at, analysis.steady.index
        ),
        process_curves=process_curves,
        retention=retention(
            starts,
            ends,
            lambda t: float(requests_at([t], timeline)[0]),
            load_start=outcome.started_at,
            main_pid=recordings[0][0] if recordings else -1,
            problems=problems,
        ),
        full_collections=(
            full_collections(collections, outcome, recorder.collections_missed())
            if scenario.profile.retained_heap
            else None
        ),
    )


def census_problems(
    asked: bool,
    main_pid: int,
    starts: Sequence[CensusRecord],
    ends: Sequence[CensusRecord],
    failed: dict[str, dict[int, str]],
) -> tuple[str, ...]:
    """What went wrong with the censuses the scenario asked for: those that failed, and
    the main process's that never came (a fork recycled meanwhile has no end census,
    and that is no problem); none if none was ``asked`` for."""
    if not asked:
        return ()
    problems = [
        f"the {label} census of process {pid} {why}"
        for label, theirs in failed.items()
        for pid, why in sorted(theirs.items())
    ]
    answered = {
        "start": {c.pid for c in starts} | set(failed["start"]),
        "end": {c.pid for c in ends} | set(failed["end"]),
    }
    if main_pid not in answered["start"]:
        problems.append(f"process {main_pid} answered no start census")
    elif main_pid not in answered["end"]:
        problems.append(f"process {main_pid} answered no end census")
    return tuple(problems)


CENSUS_MARGIN_S = 0.1
"""Past a census's end, the time its objects may take to go."""


def _census_windows(
    censuses: Sequence[CensusRecord], timing: Timing
) -> dict[int, list[tuple[float, float]]]:
    """When each process's snapshots may hold a census's own objects: they are no point
    of the curve. From a capture file (stamped by the service's tracker) the census's
    time and a margin; read live, only its own time: memgate stamps what it read when
    it reads it and the stream may lag, so the agent's allocations are taken out of
    every point instead (:func:`_without_agent`), and a wider window would cost a short
    run the points it needs."""
    windows: dict[int, list[tuple[float, float]]] = {}
    for census in censuses:
        margin = max(CENSUS_MARGIN_S, census.seconds) if timing.stamped_in_service else 0.0
        end = census.t + census.seconds + margin
        windows.setdefault(census.pid, []).append((census.t, end))
    return windows


def _read(
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
) -> _Read:
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
    return _Read(curve, analysis, sites, processes, len(snapshots[0]))


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


def _load_stats(outcome: LoadOutcome, warmup_done: int) -> LoadStats:
    total = outcome.samples[-1]
    duration = outcome.ended_at - outcome.started_at
    measured_duration = outcome.ended_at - (outcome.warmup_done_at or outcome.started_at)
    return LoadStats(
        requests=total.requests,
        failures=total.failures,
        warmup_requests=warmup_done,
        measured_requests=total.requests - warmup_done,
        duration_s=round(duration, 3),
        measured_duration_s=round(measured_duration, 3),
        requests_per_second=round((total.requests - warmup_done) / max(measured_duration, 1e-9), 1),
        stop_reason=outcome.stop_reason,
        endpoints=outcome.endpoints,
        failure_reasons=outcome.failure_reasons,
    )


def _process_curves(
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


def _requests_when(timeline: tuple[LoadSample, ...], when: float | None) -> int:
    if when is None:
        return 0
    return round(float(requests_at([when], timeline)[0]))


def _process_samples(
    raw: list[RawProcessSample], timeline: tuple[LoadSample, ...], start: float
) -> tuple[ProcessSample, ...]:
    if not raw:
        return ()
    reqs = requests_at([s.t for s in raw], timeline)
    return tuple(
        ProcessSample(
            t=round(s.t - start, 3),
            requests=round(float(r), 1),
            rss=s.rss,
            rss_anon=s.rss_anon,
            threads=s.threads,
            fds=s.fds,
            processes=s.processes,
            sockets=s.sockets,
        )
        for s, r in zip(raw, reqs, strict=True)
    )
