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
from collections.abc import Callable, Sequence
from pathlib import Path

from gate import provenance
from gate.analysis.curve import (
    NotEnoughData,
    requests_at,
)
from gate.analysis.gc import gc_pressure
from gate.analysis.resources import resource_growth
from gate.analysis.retention import (
    CensusRecord,
    adding_lines,
    container_path,
    in_module,
    retention,
)
from gate.analysis.shape import (
    NotEnoughPoints,
)
from gate.analysis.trend import TooFewPoints
from gate.errors import RunError
from gate.layout import LOAD_LOG, LOAD_TIMELINE
from gate.load import LoadOutcome
from gate.model import (
    LoadSample,
    LoadStats,
    ProcessSample,
    RunResult,
    ScenarioRef,
    Site,
)
from gate.observed import Retention, SourceLine
from gate.recording import Timing
from gate.recording.capture_file import UnreadableCapture
from gate.result import SCHEMA_VERSION
from gate.run.reading import curves_of_processes, read_recordings
from gate.run.refusals import check_profiled
from gate.run.retained import (
    full_collections,
)
from gate.scenario import Scenario, stored_settings
from gate.service.agent_files import read_censuses, read_full_collections, read_gc_samples
from gate.service.process import ServiceProcess
from gate.service.tree import RawProcessSample, command_of


def build_result(
    scenario: Scenario,
    service: ServiceProcess,
    outcome: LoadOutcome,
    started_at: datetime.datetime,
    progress: bool,
    census_done: Callable[[], None] | None = None,
) -> RunResult:
    """One service's result from its captures and samples (``progress``: show the
    reading of a capture file's progress). ``census_done`` waits for the census asked
    after the load: given, the recordings are read while the service counts its objects
    (read live, no point falls in that census), and the census after."""
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
            check_profiled(during, forks, scenario.profile.follow_fork, service.who, command_of)
            starts, failed_starts = read_censuses(service.census_folder, "start")
            ends: list[CensusRecord] = []
            failed_ends: dict[int, str] = {}
            if census_done is None:
                ends, failed_ends = read_censuses(service.census_folder, "end")
            read = read_recordings(
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
            if census_done is not None:
                census_done()
                ends, failed_ends = read_censuses(service.census_folder, "end")
            problems = census_problems(
                scenario.profile.census,
                service.pid,
                starts,
                ends,
                {"start": failed_starts, "end": failed_ends},
            )
    except UnreadableCapture as exc:
        raise RunError(str(exc)) from None
    except (NotEnoughData, NotEnoughPoints, TooFewPoints) as exc:
        raise RunError(
            f"{recorder.describe()}: {exc} ({load.measured_requests:,} requests measured in"
            f" {load.measured_duration_s:.1f} s: too short to read; ask for more with"
            " --requests or --duration)"
        ) from None
    # The reading's time, before anything else is gathered (provenance runs git).
    capture = recorder.capture_info(recordings, read.snapshots, read_started, outcome.ended_at)
    curve, analysis = read.curve, read.analysis
    process_curves = (
        curves_of_processes(read.processes, curve, analysis.steady.index)
        if len(recordings) > 1
        else ()
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
            recording=service.recorder.env_suffix if service.recorder is not None else "",
        ),
        load=load,
        curve=curve,
        analysis=analysis,
        sites=read.sites,
        timeline=tuple(
            LoadSample(round(s.t - outcome.started_at, 3), s.requests, s.failures) for s in timeline
        ),
        processes=samples,
        capture=capture,
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
        retention=with_adds(
            retention(
                starts,
                ends,
                lambda t: float(requests_at([t], timeline)[0]),
                load_start=outcome.started_at,
                main_pid=recordings[0][0] if recordings else -1,
                problems=problems,
            ),
            scenario,
            read.sites,
            service.python.library_roots,
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


MOST_ADDS = 5
"""Lines that add to one container, kept (the first in the file)."""
SOURCE_MAX_BYTES = 2 * 2**20
"""A module's source larger than this is not read for the lines that add to a container."""


def with_adds(
    found: Retention | None, scenario: Scenario, sites: Sequence[Site], library_roots: Sequence[str]
) -> Retention | None:
    """``found`` with each container named from a module global given the lines of that
    module's file that add to it (:func:`adding_lines`), when the file is the service's
    own: below the service's folder or a file of its sites' user frames, not in
    ``library_roots``. The module is the longest start of the path that names such a
    file (``__main__``: a ``.py`` file the service's command runs)."""
    if found is None:
        return None
    base = scenario.service_cwd
    own = {s.user_frame.file for s in sites if s.user_frame is not None}
    scripts = [a for a in scenario.service.command if a.endswith(".py")]
    retained = []
    for kept in found.retained:
        split = container_path(kept.what) if kept.kind == "container" else None
        if split is not None:
            names, subscripts = split
            for cut in range(len(names) - 1, 0, -1):
                file = _module_file(names[:cut], base, own, scripts, library_roots)
                if file is not None:
                    lines = _read_adds(file, names[cut:], subscripts, base)
                    kept = dataclasses.replace(kept, adds=lines[:MOST_ADDS])
                    break
        retained.append(kept)
    return dataclasses.replace(found, retained=tuple(retained))


def _module_file(
    module: Sequence[str],
    base: Path,
    own: set[str],
    scripts: Sequence[str],
    library_roots: Sequence[str],
) -> Path | None:
    dotted = ".".join(module)
    if dotted == "__main__":
        candidates = [base / script for script in scripts]
    else:
        candidates = [base / f for f in sorted(own) if in_module(f"{dotted}.x", f)]
        folder = "/".join(module)
        for root in (base, base / "src"):
            candidates += [root / f"{folder}.py", root / folder / "__init__.py"]
    for path in candidates:
        resolved = path.resolve()
        below = any(resolved.is_relative_to(root) for root in library_roots if root)
        if not below and resolved.is_file():
            return resolved
    return None


def _read_adds(
    file: Path, names: Sequence[str], subscripts: int, base: Path
) -> tuple[SourceLine, ...]:
    try:
        with file.open("rb") as source:
            text = source.read(SOURCE_MAX_BYTES + 1)
    except OSError:
        return ()
    if len(text) > SOURCE_MAX_BYTES:
        return ()
    shown = str(file.relative_to(base)) if file.is_relative_to(base) else str(file)
    return tuple(
        SourceLine(shown, line, function)
        for line, function in adding_lines(text.decode("utf-8", "replace"), names, subscripts)
    )


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
