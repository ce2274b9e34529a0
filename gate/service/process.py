"""Start the service in its own Python with memgate's agent (memray's tracker inside),
read it live or leave it to write its capture, wait until it is healthy, sample it, stop it.

The gate owns the service's process: it runs in a session of its own, is stopped with
SIGINT when memray writes a capture file (which lets memray finish it; SIGTERM with
default handlers loses it), else with SIGTERM (read live, the last point is taken before
the stop: nothing is left to finish, and SIGTERM is the stop a service manager sends;
gunicorn 27 with uvicorn's worker ignores SIGINT, seen here for 20 s), then SIGKILL if it
hangs. psutil samples its process tree from outside.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
from pathlib import Path

import psutil

from gate._files import last_line, open_log
from gate.agent.memgate_agent import (
    CENSUS_FILE,
    CENSUS_REQUEST,
    RETAINED_END,
    RETAINED_START,
    SETTINGS,
)
from gate.analysis.shape import MIN_RETAINED
from gate.errors import RunError
from gate.layout import CAPTURE, SERVICE_LOG
from gate.loopback import open_direct
from gate.recording import Recorder, recorder_for
from gate.scenario import PORT_OF, Scenario, port_variable
from gate.service.agent_settings import agent_settings
from gate.service.checks import MeasuredChecks, check_listening
from gate.service.exits import exit_text
from gate.service.interpreter import (
    AGENT,
    ServicePython,
    check_python,
    check_sampler,
    service_command,
)
from gate.service.tree import (
    RawProcessSample,
    loaded_libraries,
    marked,
    sample_tree,
)
from gate.spacing import Spacing

HEALTH_POLL_S = 0.1
SAMPLE_INTERVAL_S = 0.1
MARK = "MEMGATE_SERVICE"
"""The variable of the service's environment that marks it and what it starts."""


def fill_port(text: str, port: int, ports: dict[str, int] | None = None) -> str:
    """``text`` with ``{port}`` replaced by ``port`` and each ``{port:NAME}`` by the port
    of service NAME in ``ports`` (the scenario has checked that they name services)."""
    text = text.replace("{port}", str(port))
    return PORT_OF.sub(lambda m: str((ports or {}).get(m.group(1), m.group(0))), text)


@dataclasses.dataclass(frozen=True)
class StopInfo:
    signal: str
    """The last signal it took to stop the service: SIGINT, SIGTERM or SIGKILL."""
    returncode: int | None


class ServiceProcess:
    """The service with memray's tracker in it: started, read, health-checked, sampled
    and stopped."""

    def __init__(
        self,
        scenario: Scenario,
        port: int,
        out_dir: Path,
        *,
        profiled: bool = True,
        ports: dict[str, int] | None = None,
    ) -> None:
        self.scenario = scenario
        """The service's scenario (one of a scenario file's members)."""
        self.profiled = profiled
        """``False`` runs the service without memray (to measure what profiling costs)."""
        self.port = port
        self.ports = ports or {}
        """The port of every service of the scenario, by name (none for one service)."""
        self.capture_path = out_dir / CAPTURE
        self.log_path = out_dir / SERVICE_LOG
        self.gc_prefix = out_dir / "gc"
        """The GC probe writes ``gc.<pid>.<start ns>.jsonl`` here, one file per process."""
        self.libraries: tuple[str, ...] = ()
        """With native traces, the files the service had mapped at the end of the load."""
        self.health_url = fill_port(scenario.service.health_url, port)
        self._proc: subprocess.Popen[bytes] | None = None
        self._samples: list[RawProcessSample] = []
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        self._python: ServicePython | None = None
        self._env: dict[str, str] = {}
        self._argv: list[str] = []
        self.recorder: Recorder | None = None
        """How its allocations are recorded (set by :meth:`start`; none unprofiled)."""
        self._seen: dict[int, psutil.Process] = {}
        """Every process of the service's tree the sampler saw, by pid."""
        self.measured = MeasuredChecks()
        self._mark = secrets.token_hex(8)
        """In ``$MEMGATE_SERVICE`` of the service: what it starts inherits it."""

    @property
    def who(self) -> str:
        """``service``, or ``service NAME`` for one of several: how errors name it."""
        name = self.scenario.service_name
        return f"service {name}" if name else "service"

    def _clear_previous(self) -> None:
        """What an earlier run left in the folder that would be read as this run's:
        forks' captures (the agent's tracker replaces only the main capture), the
        garbage collector's counts, forks' announced ports; and, live, a capture file
        that is not this run's."""
        folder = self.capture_path.parent
        stale = [
            *folder.glob(self.capture_path.name + ".*"),
            *folder.glob("gc.*.jsonl"),
            *folder.glob("live.*.port"),
            *folder.glob("census.*"),
            *folder.glob("full.*.jsonl"),
            *folder.glob("flamegraph*.html"),
            folder / "live.ended",
            folder / RETAINED_START,
            folder / RETAINED_END,
        ]
        for path in stale:
            if (
                path.name in ("flamegraph.html", "live.ended", RETAINED_START, RETAINED_END)
                or path.name.startswith("census.")
                or any(p.isdigit() for p in path.name.split("."))
            ):
                path.unlink(missing_ok=True)  # capture.bin.PID, gc.PID.START.jsonl, ...
        if self.recorder is not None:
            self.recorder.clear()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def started(self) -> bool:
        return self._proc is not None

    @property
    def live(self) -> bool:
        """Whether what is recorded is read while the load runs (once started)."""
        return self.recorder is not None and self.recorder.streams

    def prepare(self) -> ServicePython:
        """Choose the service's interpreter and check that it can run memgate's agent
        (memray importable, memgate's version): before anything starts, so that a
        misconfigured interpreter costs no run. Raises :class:`InputError` otherwise."""
        if self._python is not None:
            return self._python
        spec = self.scenario.service
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PORT"] = env["MEMGATE_PORT"] = str(self.port)
        env[MARK] = self._mark
        env.update({port_variable(name): str(port) for name, port in self.ports.items()})
        env.update({k: fill_port(v, self.port, self.ports) for k, v in spec.env.items()})
        command = [fill_port(arg, self.port, self.ports) for arg in spec.command]
        name = self.scenario.service_name
        where = f"services.{name}" if name else "service"
        cwd = self.scenario.service_cwd
        python, target = service_command(command, env.get("PATH", ""), cwd, spec.python, where)
        self._python = check_python(python, env, cwd, where)
        if self.profiled and self.scenario.profile.capture == "sampled":
            check_sampler(self._python, where)
        self._env = env
        self._argv = [python, str(AGENT), *target] if self.profiled else [python, *target]
        return self._python

    @property
    def watched(self) -> str:
        """How the service is watched, for progress lines: ``under memray``, or counted."""
        capture = self.scenario.profile.capture
        if capture == "sampled":
            return "counted and sampled (nothing traced)"
        return "under memray" if capture in ("live", "file") else "counted (nothing traced)"

    @property
    def python(self) -> ServicePython:
        """The service's interpreter (see :meth:`prepare`)."""
        return self.prepare()

    def start(self) -> None:
        self.prepare()
        folder = self.capture_path.parent
        if self.profiled:
            self.recorder = recorder_for(self.scenario.profile, folder, self.capture_path, self.who)
        self._clear_previous()
        env = dict(self._env)
        if self.recorder is not None:
            recording = self.recorder.agent_settings()
            env[SETTINGS] = agent_settings(self.scenario.profile, folder, recording)
            env.update(self.recorder.service_env(env))
        with open_log(self.log_path) as log:
            try:
                self._proc = subprocess.Popen(
                    self._argv,
                    cwd=self.scenario.service_cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise RunError(f"could not start the {self.who}: {exc}") from None
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()
        if self.recorder is not None:
            try:
                self.recorder.connect(self.pid, alive=lambda: self.exit_code() is None)
            except RunError as exc:
                code = self.exit_code()
                ended = f" ({exit_text(code)})" if code is not None else ""
                raise RunError(
                    f"{self.who}{ended}: {exc} (see {self.log_path}): {last_line(self.log_path)}"
                ) from None

    @property
    def census_folder(self) -> Path:
        return self.capture_path.parent

    def collect(self, measuring: bool) -> None:
        """Tell memgate's agent in every process that the measured phase started (it runs
        full collections from now on, ``[profile] retained_heap``) or ended."""
        if self.profiled and self.scenario.profile.retained_heap:
            name = RETAINED_START if measuring else RETAINED_END
            with contextlib.suppress(OSError):  # no collections: the heap is judged raw
                (self.census_folder / name).write_text("")

    def ask_census(self, label: str) -> None:
        """Ask memgate's agent in every process of the service for a census (each answers
        in ``census.LABEL.<pid>.json``), if the scenario wants them."""
        if self.profiled and self.scenario.profile.census:
            with contextlib.suppress(OSError):  # no census is no failure
                (self.census_folder / CENSUS_REQUEST.format(label=label)).write_text("")

    def wait_census(self, label: str, after: str, timeout: float) -> None:
        """Wait, up to ``timeout`` seconds, until every process that answered the census
        ``after`` and still runs has answered ``label``'s."""
        if not (self.profiled and self.scenario.profile.census):
            return
        deadline = time.monotonic() + timeout
        folder = self.census_folder
        while time.monotonic() < deadline and self.exit_code() is None:
            asked = {
                p.name.split(".")[2] for p in folder.glob(CENSUS_FILE.format(label=after, pid="*"))
            }
            done = {
                p.name.split(".")[2] for p in folder.glob(CENSUS_FILE.format(label=label, pid="*"))
            }
            if all(
                pid in done or not pid.isdigit() or not psutil.pid_exists(int(pid)) for pid in asked
            ):
                return
            time.sleep(0.02)

    def end_capture(self) -> None:
        """Take the live capture's last point and stop reading (the load has ended); with
        native traces, list the libraries the service's processes have loaded."""
        if self.recorder is not None:
            self.recorder.stop()
        native = self.profiled and self.scenario.profile.native
        if native and not self.libraries and self._proc is not None:  # once, while it runs
            try:
                tree = psutil.Process(self._proc.pid).children(recursive=True)
            except psutil.Error:
                tree = []
            self.libraries = loaded_libraries([self._proc.pid, *(p.pid for p in tree)])

    def wait_healthy(self) -> float:
        """Poll the health URL; return the seconds it took, or raise :class:`RunError`."""
        assert self._proc is not None
        timeout = self.scenario.service.startup_timeout
        started = time.monotonic()
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RunError(
                    f"{self.who} exited with code {code} during start-up"
                    f" (see {self.log_path}): {last_line(self.log_path)}"
                )
            try:
                with open_direct(self.health_url, timeout=1.0) as response:
                    healthy = 200 <= response.status < 300
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
                healthy = False  # not listening yet, or not speaking HTTP yet
            if healthy:
                self.check_listening()
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RunError(
                    f"{self.who} did not answer {self.health_url} within {timeout:g} s"
                    f" (see {self.log_path})"
                )
            time.sleep(HEALTH_POLL_S)

    def check_listening(self) -> None:
        """Refuse a port not served by the processes memgate profiles
        (:func:`gate.service.checks.check_listening`)."""
        check_listening(self)

    def check_measured(self, requests: int, *, now: bool = False) -> None:
        """Under load: refuse a service no longer measured though it runs on
        (:class:`gate.service.checks.MeasuredChecks`)."""
        self.measured.check(self, requests, now=now)

    def adopt(self, proc: psutil.Process) -> None:
        """Count ``proc`` as the service's, to be killed with it."""
        self._seen.setdefault(proc.pid, proc)

    def exit_code(self) -> int | None:
        """The exit code (negative: the signal that ended it), ``None`` while it runs or
        if it never started."""
        return self._proc.poll() if self._proc is not None else None

    def stop(self) -> StopInfo:
        """Stop the service so that memray completes its capture, escalating if it hangs."""
        if self._proc is None:
            return StopInfo(signal="none", returncode=None)  # it never started
        self.end_capture()
        proc = self._proc
        used = "none"
        if proc.poll() is None:
            timeout = self.scenario.service.stop_timeout
            steps = [(signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)]
            if self.recorder is not None and self.recorder.finishes_on_exit:
                steps = [(signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)]
            for sig, wait_s in steps:
                used = sig.name
                self._signal(sig, group=sig is not signal.SIGINT)
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Whatever the leader left behind (workers, helpers) goes with it.
        self._signal(signal.SIGKILL, group=True)
        self._stop_sampling.set()
        if self._sampler is not None:
            self._sampler.join()
        self._kill_seen()
        return StopInfo(signal=used, returncode=proc.poll())

    def kill(self) -> None:
        """Kill the service and its process group at once (no time for a clean stop)."""
        if self._proc is not None:
            self._signal(signal.SIGKILL, group=True)
        self._stop_sampling.set()
        self._kill_seen()
        self.end_capture()

    def heap_so_far(self) -> tuple[list[float], list[int]]:
        """While the load runs: the times of the points read so far and the heap at each
        (empty when nothing is read before the end); right after full collections once
        there are enough of them (``[profile] retained_heap``), as the run's analysis
        judges the heap."""
        if self.recorder is None:
            return [], []
        enough = MIN_RETAINED if self.scenario.profile.retained_heap else 0
        return self.recorder.heap_so_far(enough)

    @property
    def waits_for_collections(self) -> bool:
        """Whether the load's requests bound waits for enough full collections read
        (:meth:`collections_enough`): a counted service's, with ``retained_heap``."""
        return (
            self.recorder is not None
            and self.recorder.waits_for_collections
            and self.scenario.profile.retained_heap
        )

    def collections_enough(self, wanted: int, since: float) -> bool:
        """Whether ``wanted`` points right after full collections have been read from
        ``since`` (seconds since the epoch) on."""
        return self.recorder is None or self.recorder.retained_so_far(since) >= wanted

    def samples(self) -> list[RawProcessSample]:
        return list(self._samples)

    def tree_pids(self) -> tuple[int, ...]:
        """The processes of its tree at the last sample, its own first."""
        return self._samples[-1].pids if self._samples else ()

    def _kill_seen(self) -> None:
        """Kill every process of the tree ever sampled that still runs (one that left
        the service's session, ``setsid``, escapes its process group's signal; psutil
        tells a pid reused since by another process apart, by its start time), and every
        one that carries the service's mark in its environment: a daemon it started that
        left the tree before a sample saw it (through a shell, where no at-fork hook of
        the agent runs, it outlived 5 of 5 runs)."""
        for proc in [*self._seen.values(), *marked(MARK, self._mark)]:
            with contextlib.suppress(psutil.Error):
                if proc.is_running():
                    proc.kill()

    def _signal(self, sig: signal.Signals, *, group: bool) -> None:
        assert self._proc is not None
        try:
            if group:
                os.killpg(self._proc.pid, sig)
            else:
                self._proc.send_signal(sig)
            if sig is not signal.SIGKILL:  # a stopped process acts on it once continued
                if group:
                    os.killpg(self._proc.pid, signal.SIGCONT)
                else:
                    self._proc.send_signal(signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass

    def _sample_loop(self) -> None:
        assert self._proc is not None
        try:
            root = psutil.Process(self._proc.pid)
        except psutil.NoSuchProcess:
            return
        kept = Spacing(SAMPLE_INTERVAL_S)  # every process is seen, fewer samples kept
        while not self._stop_sampling.wait(SAMPLE_INTERVAL_S):
            sample = sample_tree(root, self._seen)
            if sample is None:
                return
            if kept.keep(sample.t):
                self._samples.append(sample)
