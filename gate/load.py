"""The Locust load: the only module that imports locust.

``import locust`` monkey-patches the whole process with gevent, so the load runs in a
process of its own: :class:`LoadProcess` (parent side, no locust import) starts
``python -m gate.load CONFIG_JSON``, whose :func:`_child_main` drives the user's plain
locustfile with Locust's library API and appends its timeline, as JSON lines, to a file
the parent reads for progress and for the curve's x-axis.

Timeline events (one JSON object a line, ``t`` in seconds since the epoch):
``start``, ``sample`` (``requests``, ``failures``: cumulative, every 100 ms);
``warmup_done``; ``end`` (``stop_reason``, ``endpoints``); ``error`` (``message``,
``kind``: ``input`` for the locustfile, ``run`` for the rest).

With ``processes`` above 1 the load process is Locust's master and starts that many
worker processes (``python -m gate.load --worker INDEX PORT PID CONFIG_JSON``, in its
process group) that connect to it on 127.0.0.1. The timeline is the same, from the master's stats
(the workers' reports summed); ``end`` also lists ``workers`` (``worker``, ``requests``).
A worker writes only ``error`` events, its message starting ``Locust worker N:``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gate._files import last_line, open_log
from gate._process import signal_name
from gate.errors import InputError, RunError
from gate.model import EndpointStats, LoadSample

SAMPLE_INTERVAL_S = 0.1
DEADLINE_GRACE_S = 30.0
"""How long past its time limit the parent waits before it kills the load process."""

LOOPBACK = "127.0.0.1"
"""The only address a distributed load's master listens on."""
WORKER_REPORT_INTERVAL_S = 0.1
"""How often a Locust worker sends its stats to the master (Locust's own default is 3 s):
the master's counts, hence the timeline's, lag the requests served by about this much."""
WORKER_CONNECT_TIMEOUT_S = 20.0
"""How long the workers may take to start and connect (at most the load's time limit)."""
WORKER_STOP_TIMEOUT_S = 5.0
"""How long the workers may take to quit when told to, before they are killed."""
WORKER_TAG = "memgate_worker"
"""Key a worker adds to its stats reports: its index, to count requests per worker."""


@dataclasses.dataclass(frozen=True)
class LoadConfig:
    """What the load process is told; passed to it as JSON."""

    locustfile: str
    user_classes: list[str]
    host: str
    users: int
    spawn_rate: float
    warmup_requests: int
    requests: int | None
    duration: float | None
    time_limit: float
    timeline_path: str
    processes: int = 1
    """Locust processes: above 1, a master (the load process) and this many workers."""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    """Set in the load processes' environment (the ports of a scenario's services)."""


@dataclasses.dataclass(frozen=True)
class LoadOutcome:
    """What the load process reported, in absolute times (seconds since the epoch)."""

    started_at: float
    warmup_done_at: float | None
    ended_at: float
    samples: tuple[LoadSample, ...]
    """``t`` is absolute here; the runner makes it relative to ``started_at``."""
    stop_reason: str
    endpoints: tuple[EndpointStats, ...]


@dataclasses.dataclass
class LoadProgress:
    phase: str = "starting"
    requests: int = 0
    failures: int = 0


class LoadProcess:
    """Parent side: start the load process, follow its timeline, collect the outcome."""

    def __init__(self, config: LoadConfig, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._events: list[dict[str, Any]] = []
        self._offset = 0
        self.progress = LoadProgress()
        self.deadline = float("inf")
        """``time.monotonic()`` past which the load process is hung (set by :meth:`start`)."""

    def start(self) -> None:
        Path(self.config.timeline_path).write_text("")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.config.env}
        self.deadline = time.monotonic() + self.config.time_limit + DEADLINE_GRACE_S
        with open_log(self.log_path) as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "gate.load", json.dumps(dataclasses.asdict(self.config))],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def poll(self) -> int | None:
        """Read new timeline events; return the exit code once the process has ended."""
        assert self._proc is not None
        code = self._proc.poll()
        self._read_events()
        return code

    def kill(self) -> None:
        """Kill the load process and its Locust workers: it leads their process group."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def outcome(self) -> LoadOutcome:
        """The finished load's outcome; :class:`RunError` if it did not finish properly."""
        assert self._proc is not None
        code = self._proc.wait()
        self._read_events()
        for event in self._events:
            if event["event"] == "error":
                error = InputError if event.get("kind") == "input" else RunError
                raise error(f"load failed: {event['message']} (see {self.log_path})")
        by_kind = {event["event"]: event for event in self._events}
        if code != 0 or "end" not in by_kind:
            raise RunError(
                f"load process exited with code {code} before finishing"
                f" (see {self.log_path}): {last_line(self.log_path)}"
            )
        end = by_kind["end"]
        samples = tuple(
            LoadSample(t=e["t"], requests=e["requests"], failures=e["failures"])
            for e in self._events
            if e["event"] in ("start", "sample", "end")
        )
        return LoadOutcome(
            started_at=by_kind["start"]["t"],
            warmup_done_at=by_kind.get("warmup_done", {}).get("t"),
            ended_at=end["t"],
            samples=samples,
            stop_reason=end["stop_reason"],
            endpoints=tuple(EndpointStats(**e) for e in end["endpoints"]),
        )

    def _read_events(self) -> None:
        with open(self.config.timeline_path, "rb") as timeline:
            timeline.seek(self._offset)
            chunk = timeline.read()
        complete, _, _ = chunk.rpartition(b"\n")
        if not complete:
            return
        self._offset += len(complete) + 1
        for line in complete.splitlines():
            event = json.loads(line)
            self._events.append(event)
            if event["event"] in ("sample", "end"):
                self.progress.requests = event["requests"]
                self.progress.failures = event["failures"]
            if event["event"] == "start":
                self.progress.phase = "warm-up"
            elif event["event"] == "warmup_done":
                self.progress.phase = "measuring"
            elif event["event"] == "end":
                self.progress.phase = "done"


# --- the load process ------------------------------------------------------------------


class LoadFailure(Exception):
    """A reason of memgate's own for stopping the load, shown as it is."""


Emit = Callable[..., None]


def _child_main(config: LoadConfig) -> int:
    with _timeline(config) as emit:
        return _guarded(config, emit, "", lambda env: _drive(config, env, emit))


def _worker_main(config: LoadConfig, index: int, master_port: int, master_pid: int) -> int:
    """A Locust worker of a distributed load (``python -m gate.load --worker ...``)."""
    _die_with_parent()
    if os.getppid() != master_pid:
        return 3  # the master ended before this worker could follow it
    with _timeline(config) as emit:
        prefix = f"Locust worker {index}: "
        return _guarded(
            config, emit, prefix, lambda env: _work(env, index, master_port, master_pid)
        )


@contextlib.contextmanager
def _timeline(config: LoadConfig) -> Iterator[Emit]:
    # Line-buffered appends: the master and its workers may all write an ``error`` line.
    with open(config.timeline_path, "a", buffering=1) as timeline:

        def emit(event: str, t: float | None = None, **fields: Any) -> None:
            line = {"event": event, "t": time.time() if t is None else t, **fields}
            timeline.write(json.dumps(line) + "\n")

        yield emit


def _guarded(config: LoadConfig, emit: Emit, prefix: str, run: Callable[[Any], int]) -> int:
    """Read the locustfile, then ``run`` the load on its environment. Any exception
    becomes an ``error`` event (kind ``input`` while the locustfile is read, ``run``
    after), its message prefixed with ``prefix``, before it ends the process."""
    stage = "input"
    try:
        environment = _prepare(config)
        stage = "run"
        return run(environment)
    except BaseException as exc:  # the user's locustfile may raise anything, or exit
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = str(exc) if isinstance(exc, LoadFailure) else f"{type(exc).__name__}: {exc}"
        message = (text.strip().splitlines() or [type(exc).__name__])[0]
        emit("error", message=prefix + message, kind=stage)
        raise


def _prepare(config: LoadConfig) -> Any:
    """Import the locustfile and pick its User classes: a failure here is bad input."""
    import locust
    from locust.env import Environment
    from locust.util.load_locustfile import load_locustfile

    available, _shapes = load_locustfile(config.locustfile)
    if config.user_classes:
        unknown = [name for name in config.user_classes if name not in available]
        if unknown:
            raise LookupError(f"no User class {unknown[0]!r} in {config.locustfile}")
        classes = [available[name] for name in config.user_classes]
    else:
        classes = list(available.values())
    if not classes:
        raise LookupError(f"no User class in {config.locustfile}")

    return Environment(user_classes=classes, host=config.host, events=locust.events)


def _drive(config: LoadConfig, env: Any, emit: Emit) -> int:
    if config.processes > 1:
        return _drive_distributed(config, env, emit)
    runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    started = time.monotonic()
    emit("start", requests=0, failures=0)
    runner.start(config.users, spawn_rate=config.spawn_rate)
    stop_reason = _follow(config, env, emit, started)
    runner.quit()
    _emit_end(env, emit, stop_reason)
    return 0


def _no_check() -> None:
    pass


def _follow(
    config: LoadConfig, env: Any, emit: Emit, started: float, check: Callable[[], None] = _no_check
) -> str:
    """Sample the (aggregated) stats every 100 ms until a bound is reached; its name."""
    import gevent

    measure_from: tuple[float, int] | None = None
    if config.warmup_requests == 0:
        measure_from = (started, 0)
        emit("warmup_done", requests=0)
    while True:
        gevent.sleep(SAMPLE_INTERVAL_S)
        check()
        now = time.monotonic()
        done = env.stats.num_requests
        emit("sample", requests=done, failures=env.stats.num_failures)
        if measure_from is None and done >= config.warmup_requests:
            measure_from = (now, done)
            emit("warmup_done", requests=done)
        if measure_from is not None:
            if config.requests is not None and done - measure_from[1] >= config.requests:
                return "requests"
            if config.duration is not None and now - measure_from[0] >= config.duration:
                return "duration"
        if now - started >= config.time_limit:
            return "time_limit"


def _emit_end(env: Any, emit: Emit, stop_reason: str, **extra: Any) -> None:
    endpoints = [
        {
            "method": entry.method or "",
            "name": entry.name,
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "median_ms": float(entry.median_response_time or 0),
            "p95_ms": float(entry.get_response_time_percentile(0.95) or 0),
        }
        for entry in sorted(env.stats.entries.values(), key=lambda e: (e.name, e.method or ""))
    ]
    emit(
        "end",
        requests=env.stats.num_requests,
        failures=env.stats.num_failures,
        stop_reason=stop_reason,
        endpoints=endpoints,
        **extra,
    )


# --- distributed: a master here, workers in processes of their own --------------------


def _drive_distributed(config: LoadConfig, env: Any, emit: Emit) -> int:
    """This process becomes Locust's master on 127.0.0.1 (a port the system picks) and
    starts ``config.processes`` workers, ``python -m gate.load --worker``; the timeline
    follows the master's stats, which sum what the workers report."""
    import gevent

    runner = env.create_master_runner(master_bind_host=LOOPBACK, master_bind_port=0)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    by_worker: dict[int, int] = {}

    def count(client_id: str, data: dict[str, Any]) -> None:
        index = data.get(WORKER_TAG)
        if isinstance(index, int):
            done = data.get("stats_total", {}).get("num_requests", 0)
            by_worker[index] = by_worker.get(index, 0) + done

    env.events.worker_report.add_listener(count)
    started = time.monotonic()
    workers = _Workers(config, runner.server.port)
    try:
        workers.start()
        connect_by = started + min(WORKER_CONNECT_TIMEOUT_S, config.time_limit)
        while len(runner.clients.ready) < config.processes:
            workers.check("before connecting to the master")
            if time.monotonic() >= connect_by:
                raise LoadFailure(
                    f"only {len(runner.clients.ready)} of {config.processes} Locust workers"
                    f" connected to the master within {connect_by - started:g} s"
                )
            gevent.sleep(0.05)
        emit("start", requests=0, failures=0)
        spawner = gevent.spawn(runner.start, config.users, config.spawn_rate)
        stop_reason = _follow(config, env, emit, started, lambda: workers.check("under load"))
        stopped_at = time.time()
        spawner.kill()
        runner.quit()  # tells the workers to quit; waits 0.5 s for their last reports
        workers.wait(WORKER_STOP_TIMEOUT_S)
    finally:
        workers.kill()
        runner.server.close(linger=0)
    # The end is when the workers were told to stop; their last reports came after.
    _emit_end(
        env,
        emit,
        stop_reason,
        t=stopped_at,
        workers=[{"worker": i, "requests": by_worker.get(i, 0)} for i in workers.indexes()],
    )
    return 0


class _Workers:
    """The master's worker processes: in its process group, so that whoever kills the
    group (the parent's :meth:`LoadProcess.kill`) kills them too."""

    def __init__(self, config: LoadConfig, master_port: int) -> None:
        self.config = config
        self.master_port = master_port
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        blob = json.dumps(dataclasses.asdict(self.config))
        for index in range(1, self.config.processes + 1):
            command = [sys.executable, "-m", "gate.load", "--worker", str(index)]
            command += [str(self.master_port), str(os.getpid()), blob]
            try:
                self.procs[index] = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)
            except OSError as exc:
                raise LoadFailure(f"could not start Locust worker {index}: {exc}") from None

    def indexes(self) -> list[int]:
        return sorted(self.procs)

    def check(self, when: str) -> None:
        """:class:`LoadFailure` if a worker has ended: the load would not be the one asked."""
        for index in self.indexes():
            code = self.procs[index].poll()
            if code is not None:
                how = f"code {code}" if code >= 0 else signal_name(-code)
                raise LoadFailure(f"Locust worker {index} exited with {how} {when}")

    def wait(self, timeout: float) -> None:
        """Let the workers end by themselves (they were told to quit), for a while."""
        import gevent

        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if all(proc.poll() is not None for proc in self.procs.values()):
                return
            gevent.sleep(0.05)
        for index in self.indexes():
            if self.procs[index].poll() is None:
                print(f"memgate: Locust worker {index} did not quit in {timeout:g} s: killed")

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _work(env: Any, index: int, master_port: int, master_pid: int) -> int:
    import gevent
    import locust.runners

    # Locust's workers report every 3 s; the timeline samples every 0.1 s.
    locust.runners.WORKER_REPORT_INTERVAL = WORKER_REPORT_INTERVAL_S
    gevent.spawn(_end_with, master_pid)

    def tag(client_id: str, data: dict[str, Any]) -> None:
        data[WORKER_TAG] = index

    env.events.report_to_master.add_listener(tag)
    runner = env.create_worker_runner(master_host=LOOPBACK, master_port=master_port)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.greenlet.join()  # until the master says quit
    runner.client.close(linger=0)
    return 0


def _die_with_parent() -> None:
    """Have Linux kill this process when its parent (the master) ends, however it ends
    and whatever this process is doing then (a locustfile's import may hang)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _end_with(master_pid: int) -> None:
    """End this worker as soon as its master is gone (killed, crashed), also where
    :func:`_die_with_parent` cannot, or when the master ended before it took effect."""
    import gevent

    while os.getppid() == master_pid:
        gevent.sleep(0.2)
    os._exit(3)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        index, port, pid, blob = argv[1:]
        return _worker_main(LoadConfig(**json.loads(blob)), int(index), int(port), int(pid))
    return _child_main(LoadConfig(**json.loads(argv[0])))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
