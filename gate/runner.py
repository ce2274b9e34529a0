"""One run of a scenario: service under memray, Locust load, capture read into a result.

This is where the edges meet: ``service`` (processes), ``load`` (Locust, in its own
process), ``capture`` (memray files) and the pure ``analysis``. It writes only into the
run's output folder and keeps everything there when a run fails, for a post-mortem.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import sys
import sysconfig
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gate import provenance
from gate._files import last_line, write_atomic
from gate._process import exit_text
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
from gate.baseline import thin
from gate.capture import Capture, UnreadableCapture
from gate.errors import InputError, MemgateError, RunError
from gate.load import DEADLINE_GRACE_S, LoadConfig, LoadOutcome, LoadProcess
from gate.model import (
    CaptureInfo,
    Curve,
    LoadSample,
    LoadStats,
    ProcessCurve,
    ProcessSample,
    RunResult,
    ScenarioRef,
)
from gate.result import SCHEMA_VERSION
from gate.scenario import Scenario, ScenarioFile, port_variable
from gate.service import (
    GC_PROBE,
    RawProcessSample,
    ServiceProcess,
    StopInfo,
    free_port,
    read_gc_samples,
)

POLL_S = 0.1
FAILURE_SAMPLES = 200
EARLIER_RUN_FILES = ("failure.json", "result.json", "report.json", "report.html")
"""What a run in the folder wrote last time and this run replaces, or must not leave
beside its own failure (``memgate merge`` would read the old report as this run's)."""


class RunObserver(Protocol):
    """What a run reports while it goes (the CLI draws it; tests may ignore it)."""

    show_capture_progress: bool
    """Let memray draw its own progress bars while the capture is read (long reads)."""

    def phase(self, name: str) -> None: ...

    def load_progress(self, phase: str, requests: int, failures: int) -> None: ...


class QuietObserver:
    show_capture_progress = False

    def phase(self, name: str) -> None:
        pass

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        pass


def run_scenario(
    scenario: ScenarioFile, out_dir: Path, observer: RunObserver | None = None
) -> RunResult:
    """Run a one-service ``scenario`` once (see :func:`run_services`)."""
    if scenario.doc.service is None:
        raise ValueError(f"scenario {scenario.name!r} has several services: run_services")
    return run_services(scenario, out_dir, observer)[0]


def run_services(
    scenario: ScenarioFile, out_dir: Path, observer: RunObserver | None = None
) -> list[RunResult]:
    """Run ``scenario`` once; write its files into ``out_dir``; return what it measured,
    one result per service in the order they started.

    Several services each keep their files in ``out_dir/NAME``; the load's files and a
    failure's account are in ``out_dir`` itself. They start in order, each healthy
    before the next, and stop in the reverse order. Raises :class:`RunError` when the
    run could not measure (a service did not start or died, the load failed or served no
    successful request, a capture is unusable).
    """
    observer = observer or QuietObserver()
    members = scenario.members()
    folders = [out_dir / m.service_name if m.service_name else out_dir for m in members]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # Services renamed or removed since an earlier run left their verdicts too (a
        # service's folder is known by its log).
        earlier = [path.parent for path in out_dir.glob("*/service.log")]
        for folder in dict.fromkeys([out_dir, *earlier, *folders]):
            folder.mkdir(parents=True, exist_ok=True)
            # An earlier run's verdict must not outlive this run if it fails.
            for name in EARLIER_RUN_FILES:
                (folder / name).unlink(missing_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    started_at = datetime.datetime.now(datetime.UTC)
    ports = _free_ports(len(members))
    named = {m.service_name: p for m, p in zip(members, ports, strict=True) if m.service_name}
    services = [
        ServiceProcess(m, port, folder, ports=named)
        for m, port, folder in zip(members, ports, folders, strict=True)
    ]
    target = services[[m.service_name for m in members].index(members[0].load.target)]
    watched = _Watched(observer)
    tried: list[ServiceProcess] = []
    try:
        try:
            for service in services:
                watched.phase(f"starting the {service.who} under memray")
                tried.append(service)
                service.start()
                service.wait_healthy()
            outcome = _drive_load(members[0], services, target, out_dir, named, watched)
        except RunError:
            watched.failed_in = watched.last_phase  # not the stop that follows
            raise
        finally:
            stops = _stop_all(tried, watched)
        try:
            for service, stop in reversed(stops):
                if stop.signal == "SIGKILL":
                    watched.failed_in = f"stopping the {service.who}"
                check_stop(stop, service.log_path, service.who)
            check_load(outcome, members[0], out_dir)
        except RunError:
            watched.failed_in = watched.failed_in or "load"  # unless a service was killed
            raise
        results = []
        for member, service in zip(members, services, strict=True):
            watched.phase(f"reading the {service.who}'s capture")
            results.append(
                _build_result(member, service, outcome, started_at, observer.show_capture_progress)
            )
        return results
    except RunError as exc:
        # A full disk, say, must not hide the run's own reason.
        with contextlib.suppress(OSError, MemgateError):
            exc.kept = write_failure(out_dir, scenario, exc, tried, watched)
        raise


def _stop_all(
    services: Sequence[ServiceProcess], watched: _Watched
) -> list[tuple[ServiceProcess, StopInfo]]:
    """Stop ``services`` in the reverse order (what depends on the others first). If
    stopping is cut short (a second Ctrl-C, a CI cancel's SIGTERM), the services not yet
    stopped are killed: none outlives memgate."""
    stops = []
    left = list(reversed(services))
    try:
        while left:
            watched.phase(f"stopping the {left[0].who}")
            stops.append((left[0], left[0].stop()))
            left.pop(0)
    finally:
        for service in left:
            service.kill()
    return stops


def _free_ports(count: int) -> list[int]:
    """``count`` different free ports on 127.0.0.1."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class _Watched:
    """Passes the run's progress on to its observer, and remembers the last of it."""

    def __init__(self, observer: RunObserver) -> None:
        self.observer = observer
        self.show_capture_progress = observer.show_capture_progress
        self.last_phase = self.failed_in = ""
        self.requests = self.failures = 0

    def phase(self, name: str) -> None:
        self.last_phase = name
        self.observer.phase(name)

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        self.requests, self.failures = requests, failures
        self.observer.load_progress(phase, requests, failures)


def write_failure(
    out_dir: Path,
    scenario: ScenarioFile,
    error: RunError,
    services: Sequence[ServiceProcess],
    run: _Watched,
) -> Path:
    """``failure.json`` beside what the run left (service logs, load timeline, captures):
    why it failed, in which phase, the load so far and each service's process tree over
    time, so that a run that could not measure still tells what it saw."""
    doc = {
        "failure_version": 1,
        "scenario": scenario.name,
        "reason": str(error),
        "exit_code": int(error.exit_code),
        "phase": run.failed_in or run.last_phase,
        "load": {"requests": run.requests, "failures": run.failures},
    }
    if scenario.doc.service is not None:
        service = services[0] if services else None
        doc["service"] = {"returncode": service.exit_code() if service else None}
        doc["processes"] = _failure_samples(service)
    else:
        doc["services"] = {
            s.scenario.service_name: {
                "returncode": s.exit_code(),
                "processes": _failure_samples(s),
            }
            for s in services
        }
    folders = [out_dir, *(s.capture_path.parent for s in services)]
    doc["files"] = {
        str(path.relative_to(out_dir)): path.stat().st_size
        for folder in dict.fromkeys(folders)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != "failure.json"
    }
    path = out_dir / "failure.json"
    write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n")
    return path


def _failure_samples(service: ServiceProcess | None) -> list[dict[str, object]]:
    samples = service.samples() if service else []
    start = samples[0].t if samples else 0.0
    return [
        {k: v for k, v in dataclasses.asdict(s).items() if k != "pids"}
        | {"t": round(s.t - start, 3)}
        for s in thin(samples, FAILURE_SAMPLES)
    ]


def _drive_load(
    scenario: Scenario,
    services: Sequence[ServiceProcess],
    target: ServiceProcess,
    out_dir: Path,
    ports: dict[str, int],
    observer: RunObserver,
) -> LoadOutcome:
    spec = scenario.load
    health = urllib.parse.urlsplit(target.health_url)
    config = LoadConfig(
        locustfile=str(scenario.locustfile),
        user_classes=list(spec.user_classes),
        host=f"{health.scheme}://{health.netloc}",
        users=spec.users,
        spawn_rate=spec.spawn_rate,
        warmup_requests=spec.warmup_requests,
        requests=spec.requests,
        duration=spec.duration,
        time_limit=spec.time_limit,
        timeline_path=str(out_dir / "load.jsonl"),
        processes=spec.processes,
        env={port_variable(name): str(port) for name, port in ports.items()},
    )
    load = LoadProcess(config, out_dir / "load.log")
    observer.phase("load")
    load.start()
    try:
        while True:
            finished = load.poll() is not None
            progress = load.progress
            observer.load_progress(progress.phase, progress.requests, progress.failures)
            for service in services:
                code = service.exit_code()
                if code is not None:
                    raise RunError(
                        f"{service.who} died under load ({exit_text(code)}) after"
                        f" {progress.requests} requests (see {service.log_path})"
                    )
            if finished:
                break
            if time.monotonic() > load.deadline:
                raise RunError(
                    f"load process hung: still running {DEADLINE_GRACE_S:g} s past its"
                    f" {spec.time_limit:g} s time limit (see {load.log_path})"
                )
            time.sleep(POLL_S)
    finally:
        load.kill()
    return load.outcome()


def check_load(outcome: LoadOutcome, scenario: Scenario, out_dir: Path) -> None:
    """Refuse a load that did not give something to measure: :class:`RunError`."""
    last = outcome.samples[-1] if outcome.samples else LoadSample(0.0, 0, 0)
    if last.requests - last.failures <= 0:
        raise RunError(
            f"load produced no successful requests ({last.requests} sent, all failed;"
            f" see {out_dir / 'load.log'})"
        )
    spec = scenario.load
    if outcome.warmup_done_at is None:
        raise RunError(
            f"load completed only {last.requests} of {spec.warmup_requests}"
            f" warm-up requests within the {spec.time_limit:g} s time limit"
        )
    warm = _sample_at(outcome.samples, outcome.warmup_done_at)
    measured = last.requests - warm.requests
    if (last.requests - last.failures) - (warm.requests - warm.failures) <= 0:
        raise RunError(
            f"no successful requests after warm-up ({measured} sent, all failed;"
            f" see {out_dir / 'load.log'})"
        )
    if outcome.stop_reason == "time_limit":
        wanted = f"{spec.requests} requests" if spec.requests else f"{spec.duration:g} s"
        raise RunError(
            f"load hit its {spec.time_limit:g} s time limit after measuring {measured}"
            f" requests, before the {wanted} asked for"
        )


def check_stop(stop: StopInfo, log: Path, who: str = "service") -> None:
    """Refuse a service that was not stopped by memgate's SIGINT or SIGTERM."""
    if stop.signal == "none":
        raise RunError(
            f"{who} ended during the load ({exit_text(stop.returncode)})"
            f" (see {log}): {last_line(log)}"
        )
    if stop.signal == "SIGKILL":
        raise RunError(
            f"{who} ignored SIGINT and SIGTERM and was killed; its capture is incomplete"
            f" (see {log})"
        )


def _sample_at(samples: tuple[LoadSample, ...], when: float) -> LoadSample:
    """The first sample at or after ``when`` (the last one if none is)."""
    return next((s for s in samples if s.t >= when), samples[-1])


def _build_result(
    scenario: Scenario,
    service: ServiceProcess,
    outcome: LoadOutcome,
    started_at: datetime.datetime,
    show_progress: bool,
) -> RunResult:
    """One service's result (``scenario`` is its view) from its captures and samples."""
    read_started = time.perf_counter()
    timeline = outcome.samples
    warmup_done = _requests_when(timeline, outcome.warmup_done_at)
    during = [s for s in service.samples() if outcome.started_at <= s.t <= outcome.ended_at]
    processes = _process_samples(during, timeline, outcome.started_at)
    # A fork that ended before writing anything (or exec'd another program) left an
    # empty capture: it profiled nothing, as check_profiled then judges.
    found = [
        (pid, p) for n, (pid, p) in enumerate(service.captures()) if n == 0 or p.stat().st_size
    ]
    pids = [pid for pid, _ in found]
    paths = [path for _, path in found]
    check_profiled(during, set(pids[1:]), scenario.profile.follow_fork, service.who)
    try:
        with contextlib.ExitStack() as opened:
            captures = [
                opened.enter_context(Capture(path, show_progress=show_progress)) for path in paths
            ]
            snapshots = captures[0].snapshots()
            curve, indexes = build_curve(
                snapshots,
                timeline,
                load_start=outcome.started_at,
                load_end=outcome.ended_at,
                warmup_requests=warmup_done,
            )
            # Forks are read at the main capture's points: at each, their last snapshot.
            at = [outcome.started_at + p.t for p in curve.points]
            per_capture, heaps = [indexes], [[p.heap for p in curve.points]]
            for capture in captures[1:]:
                theirs = capture.snapshots()
                chosen = snapshot_indexes(theirs, at)
                per_capture.append(chosen)
                heaps.append([theirs[i].heap if i >= 0 else 0 for i in chosen])
            curve = with_heaps(curve, heaps)
            curve = with_rss(curve, [(s.t, s.rss_anon) for s in processes])
            analysis = analyse_curve(curve)
            stacks = sum_by_stack(
                [
                    ((s.stack, s.live) for s in capture.live_bytes_by_stack(chosen))
                    for capture, chosen in zip(captures, per_capture, strict=True)
                ]
            )
            sites = rank_sites(
                stacks,
                requests=[p.requests for p in curve.points],
                steady_index=analysis.steady.index,
                library_roots=library_roots(),
                base=str(scenario.service_cwd),
            )
    except UnreadableCapture as exc:
        raise RunError(str(exc)) from None
    except (NotEnoughData, NotEnoughPoints) as exc:
        raise RunError(f"{service.capture_path}: {exc}") from None
    process_curves = (
        _process_curves(found, per_capture, heaps, curve, analysis.steady.index)
        if len(paths) > 1
        else ()
    )
    read_seconds = time.perf_counter() - read_started

    up = "../" if scenario.service_name else ""  # the load's files are the scenario's
    total = timeline[-1]
    duration = outcome.ended_at - outcome.started_at
    measured_duration = outcome.ended_at - (outcome.warmup_done_at or outcome.started_at)
    load = LoadStats(
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
        sites=sites,
        timeline=tuple(
            LoadSample(round(s.t - outcome.started_at, 3), s.requests, s.failures) for s in timeline
        ),
        processes=processes,
        capture=CaptureInfo(
            file=service.capture_path.name,
            bytes=sum(path.stat().st_size for path in paths),
            read_seconds=round(read_seconds, 3),
            snapshots=len(snapshots),
            forks=len(paths) - 1,
        ),
        files={
            "service_log": service.log_path.name,
            "load_log": f"{up}load.log",
            "load_timeline": f"{up}load.jsonl",
        },
        resources=resource_growth(processes, analysis.steady.requests),
        gc=gc_pressure(
            read_gc_samples(service.gc_prefix), curve, outcome.started_at, analysis.steady.index
        ),
        process_curves=process_curves,
    )


def check_profiled(
    during: Sequence[RawProcessSample],
    captured: set[int],
    follow_fork: bool,
    who: str = "service",
) -> None:
    """Refuse a run whose service did its work in processes memray did not profile: its
    flat main process would otherwise pass whatever the workers did. ``during``: the
    process tree's samples through the load; ``captured``: the forks with a capture."""
    # Per sample, not per process: workers restarted every few hundred requests each
    # live briefly, but some unprofiled worker is there all the time.
    seen: dict[int, int] = {}
    uncovered = 0
    for sample in during:
        others = [pid for pid in sample.pids[1:] if pid not in captured]
        uncovered += bool(others)
        for pid in others:
            seen[pid] = seen.get(pid, 0) + 1
    if uncovered * 2 <= len(during):
        return
    missed = sorted(seen, key=lambda pid: (-seen[pid], pid))
    listed = ", ".join(str(pid) for pid in missed[:5])
    if not follow_fork:
        raise RunError(
            f"the {who} ran {len(missed)} more process(es) during most of the load (pid"
            f" {listed}) that memray did not profile; set [profile] follow_fork = true for a"
            " prefork server"
        )
    raise RunError(
        f"{len(missed)} process(es) of the {who} ran during most of the load without a"
        f" capture (pid {listed}): memray follows fork, not spawn or exec (uvicorn --workers"
        " spawns; gunicorn with uvicorn_worker.UvicornWorker forks)"
    )


def _process_curves(
    found: list[tuple[int, Path]],
    per_capture: list[list[int]],
    heaps: list[list[int]],
    curve: Curve,
    steady: int,
) -> tuple[ProcessCurve, ...]:
    """Each profiled process's heap on the curve, with its growth when it ran through
    the whole steady state (a worker restarted midway has none)."""
    requests = [p.requests for p in curve.points]
    out = []
    for number, ((pid, path), chosen, heap) in enumerate(
        zip(found, per_capture, heaps, strict=True)
    ):
        running = [i for i, index in enumerate(chosen) if index >= 0]
        if not running:
            continue
        first, last = running[0], running[-1]
        whole = first <= steady and last == len(chosen) - 1
        growth = trend(*blocks(requests[steady:], heap[steady:])) if whole else None
        out.append(
            ProcessCurve(
                pid=pid,
                capture=path.name,
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


def library_roots() -> list[str]:
    """Folders whose code is not the user's: the standard library and site-packages (and
    memgate's GC probe, the script memray runs)."""
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {sysconfig.get_path(name) for name in names}
    roots |= {
        sysconfig.get_path(name, vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
        for name in names
    }
    roots.add(str(GC_PROBE))  # memgate's probe runs the service: never the user's frame
    return sorted(root for root in roots if root)
