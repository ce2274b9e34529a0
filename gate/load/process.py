"""Parent side of the load: start the load process, follow its timeline, collect its
outcome. No locust import here: this is what the rest of memgate uses."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gate._files import last_line, open_log
from gate.errors import InputError, RunError
from gate.loopback import without_proxies
from gate.model import EndpointStats, FailureReason, LoadSample

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
    processes: int = 1
    """Locust processes: above 1, a master (the load process) and this many workers."""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    stop_path: str = ""
    """A file whose appearance ends the load early (:meth:`LoadProcess.stop_early`)."""
    enough_path: str = ""
    """With it, the requests bound ends the load only once this file exists
    (:meth:`LoadProcess.enough`): memgate writes it when what it reads can be judged."""
    tags: list[str] = dataclasses.field(default_factory=list)
    """Locust's ``--tags``: only the tasks tagged with one of them run."""
    exclude_tags: list[str] = dataclasses.field(default_factory=list)
    options: dict[str, str | int | float | bool] = dataclasses.field(default_factory=dict)
    """The locustfile's own command-line options (``environment.parsed_options``)."""
    service_ports: list[int] = dataclasses.field(default_factory=list)
    """Every port of the scenario's services on loopback, besides the host's: where the
    load's requests may go."""
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
    missed: dict[str, int] = dataclasses.field(default_factory=dict)
    """Requests sent elsewhere than to the scenario's services, by ``host:port``, and
    those whose event gave no URL (``gate.load.child.NO_URL``)."""
    failure_reasons: tuple[FailureReason, ...] = ()
    """Why requests failed, most frequent first."""


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
        for path in (self.config.stop_path, self.config.enough_path):
            if path:
                Path(path).unlink(missing_ok=True)
        env = without_proxies({**os.environ, "PYTHONUNBUFFERED": "1", **self.config.env})
        env["MEMGATE_PARENT"] = str(os.getpid())
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

    def stop_early(self) -> None:
        """End the load at its next sample, as if a bound were reached (reason ``leak``):
        its outcome is whole, and measured up to then."""
        if self.config.stop_path:
            Path(self.config.stop_path).write_text("leak\n")

    def enough(self) -> None:
        """Let the requests bound end the load (with ``enough_path``)."""
        if self.config.enough_path:
            Path(self.config.enough_path).write_text("enough\n")

    def timeline(self) -> tuple[list[LoadSample], int | None]:
        """The samples so far (absolute times), and the requests done when the warm-up
        ended (``None`` before)."""
        samples = [
            LoadSample(t=e["t"], requests=e["requests"], failures=e["failures"])
            for e in self._events
            if e["event"] in ("start", "sample", "end")
        ]
        warm = next((e["requests"] for e in self._events if e["event"] == "warmup_done"), None)
        return samples, warm

    def poll(self) -> int | None:
        """Read new timeline events; return the exit code once the process has ended."""
        assert self._proc is not None
        code = self._proc.poll()
        self._read_events()
        return code

    @property
    def ended(self) -> bool:
        """Whether its ``end`` event is read: the load is over and its outcome whole,
        whatever the process still does on its way out."""
        return self.progress.phase == "done"

    def kill(self) -> None:
        """Kill the load process and its Locust workers: it leads their process group.
        Once :attr:`ended`, this ends it without waiting for its Python's teardown (a
        tenth of a second that would delay the census and the service's stop)."""
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
        if "end" not in by_kind:  # once it is there, the way out does not matter
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
            missed=dict(end.get("missed", {})),
            failure_reasons=tuple(FailureReason(**r) for r in end.get("failure_reasons", ())),
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
