"""One run of a scenario file: its services started with memray's tracker in order, the Locust
load driven, the services stopped in reverse, and one result per service.

This is where the edges meet: ``service`` (processes), ``load`` (Locust, in its own
process), and the result's assembly from the captures. It writes only into the run's
output folder and keeps everything there when a run fails, for a post-mortem.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from gate.analysis.shape import MIN_RETAINED
from gate.errors import InputError, MemgateError, RunError
from gate.layout import (
    EARLIER_RUN_FILES,
    LOAD_ENOUGH,
    LOAD_LOG,
    LOAD_STOP,
    LOAD_TIMELINE,
    SERVICE_LOG,
    service_folder,
)
from gate.load import DEADLINE_GRACE_S, LoadConfig, LoadOutcome, LoadProcess
from gate.loopback import free_port
from gate.model import RunResult
from gate.run import auto
from gate.run.assemble import build_result
from gate.run.failure import write_failure
from gate.run.progress import QuietObserver, RunObserver, Watched
from gate.run.refusals import check_load, check_stop
from gate.run.soak import SoakWatch
from gate.run.stopping import Stopping, census_done, stop_all
from gate.scenario import Scenario, ScenarioFile, port_variable
from gate.service.exits import exit_text
from gate.service.process import ServiceProcess, StopInfo, fill_port

POLL_S = 0.1
RETAINED_WANTED = 2 * MIN_RETAINED
"""A counted service serves so fast that a check's requests may hold too few full
collections (the demo counted: 5,000 requests in 2.6 s, 10 collections, 1 in 10 runs
judged on them): its load's requests bound ends it only once this many points right
after full collections are read..."""
RETAINED_WAIT_SHARE = 0.75
RETAINED_WAIT_REQUESTS = 5
"""...or once it has run this share of its time limit, or this many times its requests:
a service whose collections are slow is then judged on what was read."""


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
    """Run ``scenario`` (see :func:`run_all`): one judged result per service."""
    return run_all(scenario, out_dir, observer).judged


@dataclasses.dataclass(frozen=True)
class Runs:
    """What a scenario's run measured."""

    judged: list[RunResult]
    """One result per service, in the scenario's order: the one its check judges."""
    counted: list[RunResult] = dataclasses.field(default_factory=list)
    """With ``capture = "auto"``, the counted runs that are not judged, because a traced
    run followed them (in ``counted/``): a recording check records them too."""


def run_all(
    scenario: ScenarioFile,
    out_dir: Path,
    observer: RunObserver | None = None,
    *,
    trace_always: bool = False,
) -> Runs:
    """Run ``scenario`` (see :func:`run_once`). With ``[profile] capture = "auto"``, a
    counted run comes first, into ``out_dir/counted``, and decides alone when it rules out
    growth; otherwise the load runs again traced into ``out_dir``, and that run is judged
    (:mod:`gate.run.auto`). ``trace_always`` (a check that records, on main) runs the
    traced load in any case, so that the history keeps runs of both kinds: a pull
    request's traced run is then compared with traced runs, its counted run with
    counted ones."""
    observer = observer or QuietObserver()
    if not auto.is_auto(scenario):
        return Runs(run_once(scenario, out_dir, observer))
    _clear_earlier(out_dir, [service_folder(out_dir, m.service_name) for m in scenario.members()])
    counted_dir = out_dir / auto.FOLDER
    counted = run_once(scenario, counted_dir, observer)
    reasons = auto.reasons(scenario, counted)
    why = next((w for w in reasons.values() if w is not None), None)
    if why is None and not trace_always:
        for result in counted:  # the result's folder; its files stay where they are
            service_folder(out_dir, result.scenario.service).mkdir(parents=True, exist_ok=True)
        return Runs([auto.decided(result) for result in counted])
    if why is None:
        observer.phase("counting decided; recording both kinds: the load again, traced")
    else:
        observer.phase(f"counting could not decide ({why}): the load again, traced")
    traced = run_once(auto.traced(scenario), out_dir, observer)
    return Runs(auto.with_counted_first(traced, counted, reasons), counted)


def _clear_earlier(out_dir: Path, folders: Sequence[Path]) -> None:
    """Create the run's folders, and remove the verdicts an earlier run left in them, or
    in any service's folder of ``out_dir``: they must not outlive this run if it fails
    (services renamed or removed since left theirs too; a service's folder is known by
    its log)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        earlier = [path.parent for path in out_dir.glob(f"*/{SERVICE_LOG}")]
        for folder in dict.fromkeys([out_dir, *earlier, *folders]):
            folder.mkdir(parents=True, exist_ok=True)
            for name in EARLIER_RUN_FILES:
                (folder / name).unlink(missing_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {out_dir}: {exc.strerror}") from None


def run_once(
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
    folders = [service_folder(out_dir, m.service_name) for m in members]
    _clear_earlier(out_dir, folders)
    started_at = datetime.datetime.now(datetime.UTC)
    ports = _free_ports(len(members))
    named = {m.service_name: p for m, p in zip(members, ports, strict=True) if m.service_name}
    services = [
        ServiceProcess(m, port, folder, ports=named)
        for m, port, folder in zip(members, ports, folders, strict=True)
    ]
    target = services[[m.service_name for m in members].index(members[0].load.target)]
    watched = Watched(observer)
    tried: list[ServiceProcess] = []
    # The analysis's statistics take a second or more to import: while the services
    # start (not during the load, where the import would starve the live reading, nor
    # after it, where it would delay the verdict).
    importing = threading.Thread(target=_import_statistics, daemon=True)
    importing.start()
    try:
        try:
            watched.phase("checking the services' interpreters")
            for service in services:
                service.prepare()  # each one checked before any service starts
            for service in services:
                watched.phase(f"starting the {service.who} {service.watched}")
                tried.append(service)
                service.start()
                service.wait_healthy()
            importing.join()
            outcome = _drive_load(members[0], services, target, out_dir, named, watched)
            requests = outcome.samples[-1].requests if outcome.samples else 0
            for service in services:  # what served the load to its end was measured
                service.check_measured(requests, now=True)
            for service in services:
                service.collect(measuring=False)
            for service in services:
                service.end_capture()  # the last live point is the load's end
            # After the last point: the census's pause and its objects are in no point.
            for service in services:
                service.ask_census("end")
            live = all(service.live for service in services)
            if not live:  # read live, the stop checks it while the recordings are read
                for service in services:  # the kernel's sockets asked while it counts
                    service.check_listening()
        except RunError:
            watched.failed_in = watched.last_phase  # not the stop that follows
            stop_all(tried, watched)
            raise
        except BaseException:
            stop_all(tried, watched)
            raise

        reading = ""

        def read() -> list[RunResult]:
            nonlocal reading
            results = []
            for member, service in zip(members, services, strict=True):
                reading = f"reading the {service.who}'s capture"
                watched.phase(reading)
                assert service.recorder is not None
                # Read live, the agent's files once its census is done (the census has
                # the cores, and the stop that waits for it comes sooner); memray's
                # streams beside it. Not live, the service stopped after its census.
                beside = live and not service.recorder.read_after_census
                if live and not beside:
                    census_done(service)
                results.append(
                    build_result(
                        member,
                        service,
                        outcome,
                        started_at,
                        observer.show_capture_progress,
                        census_done=functools.partial(census_done, service) if beside else None,
                    )
                )
            return results

        if not live:  # the capture files come last
            for service in services:
                census_done(service)
            stops = stop_all(tried, watched)
            _refuse(stops, outcome, members[0], out_dir, watched)
            return read()
        # Read live, the last points are taken: the services stop while the results are
        # built (the stop of a prefork server takes a second or more).
        # The services' ports are checked while their censuses count, and they are
        # stopped once the censuses are done, while their recordings are read.
        stopping = Stopping(tried, first=census_done, check=ServiceProcess.check_listening)
        try:
            results = read()
        except RunError as exc:
            failed: RunError | None = exc
        except BaseException:
            stopping.kill()
            raise
        else:
            failed = None
        try:
            stops = stopping.join()
        except Exception:
            if stopping.refused:  # the port served by another: what the reading met too
                watched.failed_in = "load"
                raise
            if failed is not None:  # the reading's reason first
                watched.failed_in = reading
                raise failed from None
            raise
        _refuse(stops, outcome, members[0], out_dir, watched)
        if failed is not None:
            watched.failed_in = reading  # not the stop beside it
            raise failed
        # Read live, the figure is the wait for the result once the load ended.
        waited = round(time.time() - outcome.ended_at, 3)
        return [
            dataclasses.replace(r, capture=dataclasses.replace(r.capture, read_seconds=waited))
            for r in results
        ]
    except RunError as exc:
        # A full disk, say, must not hide the run's own reason.
        with contextlib.suppress(OSError, MemgateError):
            exc.kept = write_failure(out_dir, scenario, exc, tried, watched)
        raise


def _refuse(
    stops: Sequence[tuple[ServiceProcess, StopInfo]],
    outcome: LoadOutcome,
    scenario: Scenario,
    out_dir: Path,
    watched: Watched,
) -> None:
    """Refuse a run whose services did not stop as asked, or whose load measured
    nothing: :class:`RunError`, its phase noted."""
    try:
        for service, stop in reversed(stops):
            if stop.signal == "SIGKILL":
                watched.failed_in = f"stopping the {service.who}"
            check_stop(stop, service.log_path, service.who)
        check_load(outcome, scenario, out_dir)
    except RunError:
        watched.failed_in = watched.failed_in or "load"  # unless a service was killed
        raise


def _import_statistics() -> None:
    with contextlib.suppress(ImportError):
        import pymannkendall  # noqa: F401
        import scipy.stats  # noqa: F401


def _free_ports(count: int) -> list[int]:
    """``count`` different free ports on 127.0.0.1."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


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
    counting = [s for s in services if s.waits_for_collections]
    config = LoadConfig(
        locustfile=str(scenario.locustfile),
        user_classes=list(spec.user_classes),
        host=fill_port(spec.host, target.port, ports)
        if spec.host
        else f"{health.scheme}://{health.netloc}",
        users=spec.users,
        spawn_rate=spec.spawn_rate,
        warmup_requests=spec.warmup_requests,
        requests=spec.requests,
        duration=spec.duration,
        time_limit=spec.time_limit,
        timeline_path=str(out_dir / LOAD_TIMELINE),
        processes=spec.processes,
        env={port_variable(name): str(port) for name, port in ports.items()},
        service_ports=sorted(ports.values()),
        stop_path=str(out_dir / LOAD_STOP) if spec.stop_on_leak else "",
        enough_path=str(out_dir / LOAD_ENOUGH) if counting and spec.requests else "",
        tags=list(spec.tags),
        exclude_tags=list(spec.exclude_tags),
        options=dict(spec.options),
    )
    load = LoadProcess(config, out_dir / LOAD_LOG)
    watch = SoakWatch(services, load) if spec.stop_on_leak else None
    observer.phase("load")
    load.start()
    census_asked = False
    waiting = bool(config.enough_path)
    started = time.monotonic()
    measuring_since = 0.0
    try:
        while True:
            finished = load.poll() is not None
            progress = load.progress
            phase = progress.phase
            if phase == "measuring" and not census_asked:  # the warm-up is over
                census_asked = True
                measuring_since = time.time()
                for service in services:
                    service.collect(measuring=True)
                    service.ask_census("start")
            if waiting and phase == "measuring":
                measured = progress.requests - spec.warmup_requests
                if (
                    all(s.collections_enough(RETAINED_WANTED, measuring_since) for s in counting)
                    or time.monotonic() - started >= RETAINED_WAIT_SHARE * spec.time_limit
                    or measured >= RETAINED_WAIT_REQUESTS * (spec.requests or 0)
                ):
                    load.enough()
                    waiting = False
            if watch is not None and phase == "measuring":
                growth = watch.tick()
                phase = f"{phase}; {growth}" if growth else phase
            observer.load_progress(phase, progress.requests, progress.failures)
            for service in services:
                code = service.exit_code()
                if code is not None:
                    raise RunError(
                        f"{service.who} died under load ({exit_text(code)}) after"
                        f" {progress.requests} requests (see {service.log_path})"
                    )
                service.check_measured(progress.requests)
            if finished or load.ended:  # (killed below if still on its way out)
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
