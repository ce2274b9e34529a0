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
from pathlib import Path

from gate import provenance
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
from gate.analysis.shape import NotEnoughPoints, analyse_curve
from gate.analysis.sites import rank_sites, sum_by_stack
from gate.analysis.trend import blocks, trend
from gate.capture import Capture, UnreadableCapture
from gate.errors import RunError
from gate.load import LoadOutcome
from gate.model import (
    Analysis,
    CaptureInfo,
    Curve,
    LoadSample,
    LoadStats,
    ProcessCurve,
    ProcessSample,
    RunResult,
    ScenarioRef,
    Site,
)
from gate.outputs import LOAD_LOG, LOAD_TIMELINE
from gate.provenance import library_roots
from gate.result import SCHEMA_VERSION
from gate.run.refusals import check_profiled
from gate.scenario import Scenario
from gate.service import RawProcessSample, ServiceProcess, read_gc_samples


@dataclasses.dataclass(frozen=True)
class Profiled:
    """One profiled process (the service's main process, or a fork), read at the
    curve's points."""

    pid: int
    capture: Path
    indexes: list[int]
    """Its snapshot at each curve point; -1 where it was not running."""
    heap: list[int]
    """Its heap at each curve point; 0 where it was not running."""


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
    show_progress: bool,
) -> RunResult:
    """One service's result from its captures and samples."""
    read_started = time.perf_counter()
    timeline = outcome.samples
    warmup_done = _requests_when(timeline, outcome.warmup_done_at)
    load = _load_stats(outcome, warmup_done)
    if load.measured_nothing:  # refused in more words before; never written as a result
        raise RunError(f"the load measured nothing: {load.measured_nothing}")
    during = [s for s in service.samples() if outcome.started_at <= s.t <= outcome.ended_at]
    samples = _process_samples(during, timeline, outcome.started_at)
    # A fork that ended before writing anything (or exec'd another program) left an
    # empty capture: it profiled nothing, as check_profiled then judges.
    found = [
        (pid, p) for n, (pid, p) in enumerate(service.captures()) if n == 0 or p.stat().st_size
    ]
    check_profiled(during, {pid for pid, _ in found[1:]}, scenario.profile.follow_fork, service.who)
    try:
        read = _read(scenario, found, outcome, warmup_done, samples, show_progress)
    except UnreadableCapture as exc:
        raise RunError(str(exc)) from None
    except (NotEnoughData, NotEnoughPoints) as exc:
        raise RunError(f"{service.capture_path}: {exc}") from None
    curve, analysis = read.curve, read.analysis
    process_curves = (
        _process_curves(read.processes, curve, analysis.steady.index) if len(found) > 1 else ()
    )
    read_seconds = time.perf_counter() - read_started

    up = "../" if scenario.service_name else ""  # the load's files are the scenario's
    return RunResult(
        schema_version=SCHEMA_VERSION,
        scenario=ScenarioRef(
            name=scenario.name,
            path=str(scenario.path),
            sha256=scenario.sha256,
            service=scenario.service_name,
        ),
        settings=scenario.settings.model_dump(mode="json"),
        provenance=provenance.collect(started_at, scenario.service_cwd),
        load=load,
        curve=curve,
        analysis=analysis,
        sites=read.sites,
        timeline=tuple(
            LoadSample(round(s.t - outcome.started_at, 3), s.requests, s.failures) for s in timeline
        ),
        processes=samples,
        capture=CaptureInfo(
            file=service.capture_path.name,
            bytes=sum(path.stat().st_size for _, path in found),
            read_seconds=round(read_seconds, 3),
            snapshots=read.snapshots,
            forks=len(found) - 1,
        ),
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
    )


def _read(
    scenario: Scenario,
    found: list[tuple[int, Path]],
    outcome: LoadOutcome,
    warmup_done: int,
    samples: tuple[ProcessSample, ...],
    show_progress: bool,
) -> _Read:
    """Read the captures ``found`` (the main process's first) on the load's timeline."""
    with contextlib.ExitStack() as opened:
        captures = [
            opened.enter_context(Capture(path, show_progress=show_progress)) for _, path in found
        ]
        snapshots = captures[0].snapshots()
        curve, indexes = build_curve(
            snapshots,
            outcome.samples,
            load_start=outcome.started_at,
            load_end=outcome.ended_at,
            warmup_requests=warmup_done,
        )
        (pid, path), *forks = found
        processes = [Profiled(pid, path, indexes, [p.heap for p in curve.points])]
        # Forks are read at the main capture's points: at each, their last snapshot.
        at = [outcome.started_at + p.t for p in curve.points]
        for (pid, path), capture in zip(forks, captures[1:], strict=True):
            theirs = capture.snapshots()
            chosen = snapshot_indexes(theirs, at)
            heap = [theirs[i].heap if i >= 0 else 0 for i in chosen]
            processes.append(Profiled(pid, path, chosen, heap))
        curve = with_heaps(curve, [p.heap for p in processes])
        curve = with_rss(curve, [(s.t, s.rss_anon) for s in samples])
        analysis = analyse_curve(curve)
        stacks = sum_by_stack(
            [
                ((s.stack, s.live) for s in capture.live_bytes_by_stack(process.indexes))
                for capture, process in zip(captures, processes, strict=True)
            ]
        )
        sites = rank_sites(
            stacks,
            requests=[p.requests for p in curve.points],
            steady_index=analysis.steady.index,
            library_roots=library_roots(),
            base=str(scenario.service_cwd),
        )
    return _Read(curve, analysis, sites, processes, len(snapshots))


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
        growth = trend(*blocks(requests[steady:], heap[steady:])) if whole else None
        out.append(
            ProcessCurve(
                pid=process.pid,
                capture=process.capture.name,
                main=number == 0,
                heap=tuple(heap),
                running=(first, last),
                trend=growth,
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
