"""The Locust load: the only module that imports locust.

``import locust`` monkey-patches the whole process with gevent, so the load runs in a
process of its own: :class:`LoadProcess` (parent side, no locust import) starts
``python -m gate.load CONFIG_JSON``, whose :func:`_child_main` drives the user's plain
locustfile with Locust's library API and appends its timeline, as JSON lines, to a file
the parent reads for progress and for the curve's x-axis.

Timeline events (one JSON object a line, ``t`` in seconds since the epoch):
``start``, ``sample`` (``requests``, ``failures``: cumulative, every 100 ms);
``warmup_done``; ``end`` (``stop_reason``, ``endpoints``); ``error`` (``message``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gate._files import last_line, open_log
from gate.errors import InputError, RunError
from gate.model import EndpointStats, LoadSample

SAMPLE_INTERVAL_S = 0.1
DEADLINE_GRACE_S = 30.0
"""How long past its time limit the parent waits before it kills the load process."""


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
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
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


def _child_main(config: LoadConfig) -> int:
    with open(config.timeline_path, "a", buffering=1) as timeline:

        def emit(event: str, **fields: Any) -> None:
            timeline.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")

        stage = "input"
        try:
            environment = _prepare(config)
            stage = "run"
            return _drive(config, environment, emit)
        except BaseException as exc:  # the user's locustfile may raise anything, or exit
            if isinstance(exc, KeyboardInterrupt):
                raise
            message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            emit("error", message=message, kind=stage)
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


def _drive(config: LoadConfig, env: Any, emit: Any) -> int:
    import gevent

    runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    started = time.monotonic()
    emit("start", requests=0, failures=0)
    runner.start(config.users, spawn_rate=config.spawn_rate)
    measure_from: tuple[float, int] | None = None
    if config.warmup_requests == 0:
        measure_from = (started, 0)
        emit("warmup_done", requests=0)
    stop_reason = "time_limit"
    while True:
        gevent.sleep(SAMPLE_INTERVAL_S)
        now = time.monotonic()
        done = env.stats.num_requests
        emit("sample", requests=done, failures=env.stats.num_failures)
        if measure_from is None and done >= config.warmup_requests:
            measure_from = (now, done)
            emit("warmup_done", requests=done)
        if measure_from is not None:
            if config.requests is not None and done - measure_from[1] >= config.requests:
                stop_reason = "requests"
                break
            if config.duration is not None and now - measure_from[0] >= config.duration:
                stop_reason = "duration"
                break
        if now - started >= config.time_limit:
            break
    runner.quit()
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
    )
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(LoadConfig(**json.loads(sys.argv[1]))))
