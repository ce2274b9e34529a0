"""Start the service under memray, wait until it is healthy, sample it, stop it.

The gate owns the service's process: it runs in a session of its own, is stopped with
SIGINT (which lets memray finish its capture; SIGTERM with default handlers loses it),
then SIGTERM, then SIGKILL if it hangs. psutil samples its process tree from outside.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

from gate._files import last_line, open_log
from gate.errors import InputError, RunError
from gate.model import GcSample
from gate.outputs import CAPTURE, SERVICE_LOG
from gate.provenance import GC_PROBE
from gate.scenario import PORT_OF, ProfileSpec, Scenario, port_variable

_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?$")
HEALTH_POLL_S = 0.1
SAMPLE_INTERVAL_S = 0.1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fill_port(text: str, port: int, ports: dict[str, int] | None = None) -> str:
    """``text`` with ``{port}`` replaced by ``port`` and each ``{port:NAME}`` by the port
    of service NAME in ``ports`` (the scenario has checked that they name services)."""
    text = text.replace("{port}", str(port))
    return PORT_OF.sub(lambda m: str((ports or {}).get(m.group(1), m.group(0))), text)


def python_target(command: list[str], search_path: str, where: str = "service") -> list[str]:
    """What this interpreter must run for the service command: ``[script, args...]``,
    ``["-m", module, args...]`` or ``["-c", code]``.

    ``python app.py``, ``python -m module`` and ``python -c code`` run under this
    interpreter (memray must be importable beside the service's packages); any other
    program is looked up on ``search_path`` and must be a Python script, such as a
    console script installed by pip.
    """
    head, *rest = command
    if _PYTHON_NAME.match(os.path.basename(head)):
        if not rest:
            raise InputError(f"{where}.command: 'python' needs a script, -m module or -c code")
        if rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
            raise InputError(
                f"{where}.command: interpreter option {rest[0]!r} is not supported;"
                " use python SCRIPT, python -m MODULE or python -c CODE"
            )
        return rest
    found = shutil.which(head, path=search_path)
    if found is None:
        raise RunError(f"{where} command not found: {head!r}")
    if not _is_python_script(Path(found)):
        raise InputError(
            f"{where}.command: {found} is not a Python program; memray profiles Python"
        )
    return [found, *rest]


def profiled_command(target: list[str], profile: ProfileSpec, capture: Path) -> list[str]:
    """``target`` (see :func:`python_target`) run under ``memray run``."""
    # memray compresses the capture with lz4 when the service exits: a few tenths of a
    # second at shutdown for a file about half the size that reads about a third faster
    # (its reader makes hundreds of thousands of tiny reads on an uncompressed file).
    memray = [sys.executable, "-m", "memray", "run", "--quiet", "--force"]
    memray += ["--output", str(capture)]
    if profile.trace_python_allocators:
        memray.append("--trace-python-allocators")
    if profile.native:
        memray.append("--native")
    if profile.follow_fork:
        memray.append("--follow-fork")
    return [*memray, str(GC_PROBE), *target]


def read_gc_samples(prefix: Path) -> list[list[GcSample]]:
    """The probe's samples, one list per process (``PREFIX.<pid>.<start ns>.jsonl``); a
    line cut short by a kill, or anything not the probe's, is skipped."""
    out = []
    for path in sorted(prefix.parent.glob(prefix.name + ".*.*.jsonl")):
        pid, started = path.name.split(".")[-3:-1]
        if not (pid.isdigit() and started.isdigit()):
            continue
        samples = []
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                raw = json.loads(line)
                counts = [int(n) for n in raw["collections"]]
                samples.append(
                    GcSample(float(raw["t"]), sum(counts), counts[2], float(raw["seconds"]))
                )
            except (ValueError, KeyError, TypeError, IndexError):
                continue
        if samples:
            out.append(samples)
    return out


def _is_python_script(path: Path) -> bool:
    if path.suffix == ".py":
        return True
    try:
        with open(path, "rb") as script:
            first = script.readline(256)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


@dataclasses.dataclass(frozen=True)
class RawProcessSample:
    t: float
    """Seconds since the epoch."""
    rss: int
    rss_anon: int
    threads: int
    fds: int
    processes: int
    pids: tuple[int, ...] = ()
    """The processes of the tree, the service's own first."""
    sockets: int = 0


@dataclasses.dataclass(frozen=True)
class StopInfo:
    signal: str
    """The last signal it took to stop the service: SIGINT, SIGTERM or SIGKILL."""
    returncode: int | None


class ServiceProcess:
    """The service under memray: started, health-checked, sampled and stopped."""

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
        self.health_url = fill_port(scenario.service.health_url, port)
        self._proc: subprocess.Popen[bytes] | None = None
        self._samples: list[RawProcessSample] = []
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def who(self) -> str:
        """``service``, or ``service NAME`` for one of several: how errors name it."""
        name = self.scenario.service_name
        return f"service {name}" if name else "service"

    def _clear_previous(self) -> None:
        """Forks' captures and probe files an earlier run left in the folder: they would
        be read as this run's (memray's ``--force`` replaces only the main capture)."""
        folder = self.capture_path.parent
        stale = [*folder.glob(self.capture_path.name + ".*"), *folder.glob("gc.*.jsonl")]
        for path in stale:
            if path.name.split(".")[-1 if path.suffix != ".jsonl" else -2].isdigit():
                path.unlink(missing_ok=True)  # capture.bin.PID, gc.PID.START.jsonl

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        self._clear_previous()
        spec = self.scenario.service
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PORT"] = env["MEMGATE_PORT"] = str(self.port)
        env.update({port_variable(name): str(port) for name, port in self.ports.items()})
        env.update({k: fill_port(v, self.port, self.ports) for k, v in spec.env.items()})
        search_path = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        command = [fill_port(arg, self.port, self.ports) for arg in spec.command]
        name = self.scenario.service_name
        target = python_target(command, search_path, f"services.{name}" if name else "service")
        if self.profiled:
            argv = profiled_command(target, self.scenario.profile, self.capture_path)
            env["MEMGATE_GC_PROBE"] = str(self.gc_prefix)
        else:
            argv = [sys.executable, *target]
        with open_log(self.log_path) as log:
            try:
                self._proc = subprocess.Popen(
                    argv,
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
                with urllib.request.urlopen(self.health_url, timeout=1.0) as response:
                    healthy = 200 <= response.status < 300
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
                healthy = False  # not listening yet, or not speaking HTTP yet
            if healthy:
                self._check_listening()
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RunError(
                    f"{self.who} did not answer {self.health_url} within {timeout:g} s"
                    f" (see {self.log_path})"
                )
            time.sleep(HEALTH_POLL_S)

    def _check_listening(self) -> None:
        """Refuse a health check answered by another program on the port (one the
        service could not bind): the load would measure the wrong process."""
        assert self._proc is not None
        url = urllib.parse.urlsplit(self.health_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            root = psutil.Process(self._proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return  # it died just now: the next poll or the load says so
        looked = False
        for proc in tree:
            try:
                sockets = proc.net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            looked = True
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in sockets):
                return
        if not looked:
            return  # nothing could be inspected: no evidence against the service
        raise RunError(
            f"{self.health_url} answered, but no process of the {self.who} listens on port"
            f" {port}: another program holds it (see {self.log_path})"
        )

    def exit_code(self) -> int | None:
        """The exit code (negative: the signal that ended it), ``None`` while it runs or
        if it never started."""
        return self._proc.poll() if self._proc is not None else None

    def stop(self) -> StopInfo:
        """Stop the service so that memray completes its capture, escalating if it hangs."""
        if self._proc is None:
            return StopInfo(signal="none", returncode=None)  # it never started
        proc = self._proc
        used = "none"
        if proc.poll() is None:
            for sig, wait_s in (
                (signal.SIGINT, self.scenario.service.stop_timeout),
                (signal.SIGTERM, 5.0),
                (signal.SIGKILL, 5.0),
            ):
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
        return StopInfo(signal=used, returncode=proc.poll())

    def kill(self) -> None:
        """Kill the service and its process group at once (no time for a clean stop)."""
        if self._proc is not None:
            self._signal(signal.SIGKILL, group=True)
        self._stop_sampling.set()

    def samples(self) -> list[RawProcessSample]:
        return list(self._samples)

    def captures(self) -> list[tuple[int, Path]]:
        """``(pid, capture)`` of the service's own process, then of each forked process
        (memray names a fork's capture after the main one and its pid), in pid order."""
        forks = []
        for path in self.capture_path.parent.glob(self.capture_path.name + ".*"):
            pid = path.name.removeprefix(self.capture_path.name + ".")
            if pid.isdigit():
                forks.append((int(pid), path))
        return [(self.pid, self.capture_path), *sorted(forks)]

    def _signal(self, sig: signal.Signals, *, group: bool) -> None:
        assert self._proc is not None
        try:
            if group:
                os.killpg(self._proc.pid, sig)
            else:
                self._proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _sample_loop(self) -> None:
        assert self._proc is not None
        try:
            root = psutil.Process(self._proc.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_sampling.wait(SAMPLE_INTERVAL_S):
            sample = _sample_tree(root)
            if sample is None:
                return
            self._samples.append(sample)


def _sample_tree(root: psutil.Process) -> RawProcessSample | None:
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    rss = anon = threads = fds = sockets = 0
    pids = []
    for proc in procs:
        try:
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue  # dead, not yet reaped: it holds nothing any more
                memory = proc.memory_info()
                rss += memory.rss
                anon += memory.rss - getattr(memory, "shared", 0)
                threads += proc.num_threads()
                found = _descriptors(proc.pid)
                fds += found[0] if found else proc.num_fds()
                sockets += found[1] if found else 0
            pids.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    if not pids:
        return None
    return RawProcessSample(
        t=time.time(),
        rss=rss,
        rss_anon=anon,
        threads=threads,
        fds=fds,
        processes=len(pids),
        pids=tuple(pids),
        sockets=sockets,
    )


def _descriptors(pid: int) -> tuple[int, int] | None:
    """Open file descriptors of the process, and how many are sockets, from one listing
    of ``/proc/PID/fd``; ``None`` where there is none (not Linux)."""
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    sockets = 0
    for name in names:
        try:
            sockets += os.readlink(f"{folder}/{name}").startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return len(names), sockets
