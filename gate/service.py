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
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
from pathlib import Path

import psutil

from gate._files import last_line, open_log
from gate._process import exit_text
from gate.agent.memgate_agent import (
    CENSUS_FILE,
    CENSUS_REQUEST,
    RETAINED_END,
    RETAINED_START,
    SETTINGS,
)
from gate.analysis.shape import MIN_RETAINED
from gate.errors import RunError
from gate.interpreter import AGENT, ServicePython, check_python, service_command
from gate.loopback import open_direct
from gate.outputs import CAPTURE, SERVICE_LOG
from gate.process_tree import (
    RawProcessSample,
    command_of,
    is_stopped,
    listeners,
    loaded_libraries,
    outside_tree,
    sample_tree,
)
from gate.recording import Recorder, recorder_for
from gate.scenario import PORT_OF, ProfileSpec, Scenario, port_variable
from gate.spacing import Spacing

HEALTH_POLL_S = 0.1
SAMPLE_INTERVAL_S = 0.1
RETAINED_EVERY_S = 0.2
"""The agent's full collections come at most this often in each process (a pull
request's check of the demo measures for 3 to 10 s)..."""
RETAINED_SHARE = 0.05
"""...and so much less often that their pauses take at most this share of the time: the
demo's collection (33,000 objects) takes 8-17 ms under memray, one every 0.2-0.35 s; a
framework's heap of 700,000 objects takes about 60 ms unprofiled, one every 1.2 s or more."""
MEASURED_EVERY_S = 0.5
"""How often, under load, the service's main process is checked to still be the one
memray measures (its memory map read: a few hundred lines)."""
ENDED_GRACE_S = 2.0
"""How long a process whose memray stream ended is given to exit (then it died, and is
told so) before the stream's end is taken for a process that lives on unmeasured."""


def fill_port(text: str, port: int, ports: dict[str, int] | None = None) -> str:
    """``text`` with ``{port}`` replaced by ``port`` and each ``{port:NAME}`` by the port
    of service NAME in ``ports`` (the scenario has checked that they name services)."""
    text = text.replace("{port}", str(port))
    return PORT_OF.sub(lambda m: str((ports or {}).get(m.group(1), m.group(0))), text)


def agent_settings(profile: ProfileSpec, out_dir: Path, recording: dict[str, object]) -> str:
    """What the agent inside the service is told (``$MEMGATE_AGENT``): how to profile,
    how to record (the recorder's ``recording``: ``capture``, where to stream or write),
    where the garbage collector's counts and forked processes' ports go."""
    settings = {
        **recording,
        "folder": str(out_dir),
        "gc": str(out_dir / "gc"),
        "trace_python_allocators": profile.trace_python_allocators,
        "native": profile.native,
        "follow_fork": profile.follow_fork,
        "census": profile.census,
        "retained": (
            {"every_s": RETAINED_EVERY_S, "share": RETAINED_SHARE}
            if profile.retained_heap
            else None
        ),
        "parent": os.getpid(),
    }
    return json.dumps(settings)


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
        self._next_measured_check = 0.0
        self._stopped_checks = 0

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
        env.update({port_variable(name): str(port) for name, port in self.ports.items()})
        env.update({k: fill_port(v, self.port, self.ports) for k, v in spec.env.items()})
        command = [fill_port(arg, self.port, self.ports) for arg in spec.command]
        name = self.scenario.service_name
        where = f"services.{name}" if name else "service"
        cwd = self.scenario.service_cwd
        python, target = service_command(command, env.get("PATH", ""), cwd, spec.python, where)
        self._python = check_python(python, env, cwd, where)
        self._env = env
        self._argv = [python, str(AGENT), *target] if self.profiled else [python, *target]
        return self._python

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
        """Refuse a port not served by the processes memgate profiles: a health check
        answered by another program on the port (one the service could not bind), or a
        process outside the service's tree listening there too (a daemon that
        double-forked out of it: the launcher profiled idles while the daemon serves).
        Called once healthy and at the load's end; such a daemon, forked by the service,
        is killed with it."""
        assert self._proc is not None
        port = _port_of(self.health_url)
        try:
            root = psutil.Process(self._proc.pid)
            tree = [root, *root.children(recursive=True)]
            born = root.create_time()
        except psutil.NoSuchProcess:
            return  # it died just now: the next poll or the load says so
        looked = listens = False
        for proc in tree:
            try:
                sockets = proc.net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            looked = True
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in sockets):
                listens = True
                break
        if looked and not listens:
            raise RunError(
                f"{self.health_url} answered, but no process of the {self.who} listens on"
                f" port {port}: another program holds it (see {self.log_path})"
            )
        if not self.profiled:
            return
        outside = [pid for pid in sorted(listeners(port)) if outside_tree(pid, root.pid)]
        if not outside:
            return
        for pid in outside:  # forked by the service since it started: killed with it
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.uids().real == os.getuid() and proc.create_time() >= born:
                    self._seen.setdefault(pid, proc)
        listed = ", ".join(str(pid) for pid in outside[:5])
        raise RunError(
            f"port {port} is served by pid {listed}, which memgate does not profile (a"
            f" daemon that left the {self.who}'s process tree?): run the server in the"
            f" foreground (see {self.log_path})"
        )

    def check_measured(self, requests: int, *, now: bool = False) -> None:
        """Under load: refuse a service whose main process is no longer the one memray
        measures, though it runs on: it exec'd another program (memray is no longer in
        its memory; the new program inherits the tracker's socket, so the stream does
        not end, it falls silent), or memray's stream of it ended. Checked at most every
        ``MEASURED_EVERY_S`` unless ``now``; a process that exited is left to the caller
        (it died under load)."""
        if self._proc is None:
            return
        clock = time.monotonic()
        if not now and clock < self._next_measured_check:
            return
        self._next_measured_check = clock + MEASURED_EVERY_S
        pid = self._proc.pid
        # Stopped (SIGSTOP, a debugger) in two checks running: the load stalls, and the
        # run would end only at the load's time limit and the stop signals' timeout.
        self._stopped_checks = self._stopped_checks + 1 if is_stopped(pid) else 0
        if self._stopped_checks >= 2:
            raise RunError(
                f"the {self.who}'s process (pid {pid}) is stopped (SIGSTOP, or a debugger)"
                f" after {requests:,} requests: the load stalled (see {self.log_path})"
            )
        if self.recorder is None:
            return
        if self.recorder.records(pid) is False and self.exit_code() is None:
            raise RunError(
                f"the {self.who}'s process (pid {pid}) exec'd {command_of(pid)} after"
                f" {requests:,} requests, without memray: memgate did not measure what"
                " served the rest of the load; make the scenario's command the program"
                f" that serves, not one that execs it (see {self.log_path})"
            )
        if self.recorder is None or not self.recorder.stream_ended():
            return
        deadline = time.monotonic() + ENDED_GRACE_S
        while self.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.exit_code() is None:
            raise RunError(
                f"memray's live stream of the {self.who} (pid {pid}) ended under load while"
                f" the process ran on, after {requests:,} requests: memgate did not measure"
                f" what served the rest of the load (see {self.log_path})"
            )

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

    def samples(self) -> list[RawProcessSample]:
        return list(self._samples)

    def _kill_seen(self) -> None:
        """Kill every process of the tree ever sampled that still runs: one that left
        the service's session (``setsid``) escapes its process group's signal. psutil
        tells a pid reused since by another process apart (by its start time)."""
        for proc in list(self._seen.values()):
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


def _port_of(url: str) -> int:
    """The TCP port ``url`` goes to."""
    parts = urllib.parse.urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)
