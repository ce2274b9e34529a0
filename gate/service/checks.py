"""Is what memgate measures still what serves? Checked once the service is healthy, and
again and again under load: the port is served by the processes memgate profiles, and
the main process is still the one recorded, running, and not stopped."""

from __future__ import annotations

import contextlib
import os
import time
import urllib.parse
from typing import TYPE_CHECKING

import psutil

from gate.errors import RunError
from gate.service.tree import command_of, is_stopped, outside_tree
from gate.tcp_table import listeners

if TYPE_CHECKING:
    from gate.recording import Recorder
    from gate.service.process import ServiceProcess

MEASURED_EVERY_S = 0.5
"""How often, under load, the service's main process is checked to still be the one
memray measures (its memory map read: a few hundred lines)."""
EXIT_GRACE_S = 0.1
"""How long a fork whose recording is no longer open in it is given to be gone (a
worker on its way out closes its files first)."""
ENDED_GRACE_S = 2.0
"""How long a process whose memray stream ended is given to exit (then it died, and is
told so) before the stream's end is taken for a process that lives on unmeasured."""


def check_listening(service: ServiceProcess) -> None:
    """Refuse a port not served by the processes memgate profiles: a health check
    answered by another program on the port (one the service could not bind), or a
    process outside the service's tree listening there too (a daemon that double-forked
    out of it: the launcher profiled idles while the daemon serves). Called once healthy
    and at the load's end; such a daemon, forked by the service, is killed with it."""
    port = _port_of(service.health_url)
    try:
        root = psutil.Process(service.pid)
        tree = {root.pid, *(child.pid for child in root.children(recursive=True))}
        born = root.create_time()
    except psutil.NoSuchProcess:
        return  # it died just now: the next poll or the load says so
    holders = listeners(port)
    if holders is None or not any(os.access(f"/proc/{pid}/fd", os.R_OK) for pid in tree):
        return  # no /proc to tell, or the service's descriptors are not this user's to read
    if not holders & tree:
        raise RunError(
            f"{service.health_url} answered, but no process of the {service.who} listens on"
            f" port {port}: another program holds it (see {service.log_path})"
        )
    if not service.profiled:
        return
    outside = [pid for pid in sorted(holders - tree) if outside_tree(pid, root.pid)]
    if not outside:
        return
    for pid in outside:  # forked by the service since it started: killed with it
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.uids().real == os.getuid() and proc.create_time() >= born:
                service.adopt(proc)
    listed = ", ".join(str(pid) for pid in outside[:5])
    raise RunError(
        f"port {port} is served by pid {listed}, which memgate does not profile (a"
        f" daemon that left the {service.who}'s process tree?): run the server in the"
        f" foreground (see {service.log_path})"
    )


class MeasuredChecks:
    """Under load: refuse a service whose main process is no longer the one recorded,
    though it runs on: it exec'd another program (memray is no longer in its memory; the
    new program inherits the tracker's socket, so the stream does not end, it falls
    silent), or its recording's stream ended; or one stopped (SIGSTOP, a debugger).
    Checked at most every ``MEASURED_EVERY_S`` unless ``now``; a process that exited is
    left to the caller (it died under load)."""

    def __init__(self) -> None:
        self._next = 0.0
        self._stopped = 0
        self._suspects: dict[int, float] = {}  # fork pid -> when seen without its recording

    def check(self, service: ServiceProcess, requests: int, *, now: bool = False) -> None:
        if not service.started:
            return
        clock = time.monotonic()
        if not now and clock < self._next:
            return
        self._next = clock + MEASURED_EVERY_S
        pid = service.pid
        # Stopped (SIGSTOP, a debugger) in two checks running: the load stalls, and the
        # run would end only at the load's time limit and the stop signals' timeout.
        self._stopped = self._stopped + 1 if is_stopped(pid) else 0
        if self._stopped >= 2:
            raise RunError(
                f"the {service.who}'s process (pid {pid}) is stopped (SIGSTOP, or a"
                f" debugger) after {requests:,} requests: the load stalled"
                f" (see {service.log_path})"
            )
        recorder = service.recorder
        if recorder is None:
            return
        if recorder.records(pid) is False and service.exit_code() is None:
            raise _exec_seen(service, recorder, pid, requests)
        self._forks_measured(service, recorder, requests, now=now)
        if not recorder.stream_ended():
            return
        deadline = time.monotonic() + ENDED_GRACE_S
        while service.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if service.exit_code() is None and not recorder.traces:
            # The agent's file closed in a process that runs on: it exec'd (seen a moment
            # after the look above, or while the exec was under way).
            raise _exec_seen(service, recorder, pid, requests)
        if service.exit_code() is None:
            raise RunError(
                f"memray's live stream of the {service.who} (pid {pid}) ended under load"
                f" while the process ran on, after {requests:,} requests: memgate did not"
                f" measure what served the rest of the load (see {service.log_path})"
            )

    def _forks_measured(
        self, service: ServiceProcess, recorder: Recorder, requests: int, *, now: bool
    ) -> None:
        """A recorded fork still in the service's tree that exec'd another program (a
        worker re-exec'd without memray) is no longer measured though it may serve.

        A worker on its way out looks the same for a moment (the kernel closes its files
        before it is a zombie; one recycled by gunicorn's ``max_requests`` was once taken
        for one that exec'd): a fork is refused only if it still runs without its
        recording ``EXIT_GRACE_S`` later. Under load that is told at a later check, so the
        load's loop never waits; in the last check (``now``) it is waited for."""
        tree = set(service.tree_pids())
        clock = time.monotonic()
        suspects = {
            pid: self._suspects.get(pid, clock)
            for pid in recorder.forks()
            if pid in tree and recorder.records(pid) is False
        }
        self._suspects = suspects
        if now and any(clock - seen < EXIT_GRACE_S for seen in suspects.values()):
            time.sleep(EXIT_GRACE_S)
            clock = time.monotonic()
        for pid, seen in suspects.items():
            if clock - seen >= EXIT_GRACE_S and _runs_on(pid, recorder):
                raise RunError(
                    f"a process of the {service.who} (pid {pid}), forked and recorded, exec'd"
                    f" {command_of(pid)} after {requests:,} requests, {_without(recorder)}:"
                    " memgate"
                    " did not measure what it did from then on; a worker must not exec"
                    f" (see {service.log_path})"
                )


def _runs_on(pid: int, recorder: Recorder) -> bool:
    """Whether process ``pid``, its recording not open in it, still runs without it (not
    gone, nor a zombie waiting to be reaped)."""
    if recorder.records(pid) is not False:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _exec_seen(service: ServiceProcess, recorder: Recorder, pid: int, requests: int) -> RunError:
    return RunError(
        f"the {service.who}'s process (pid {pid}) exec'd {command_of(pid)} after"
        f" {requests:,} requests, {_without(recorder)}: memgate did not measure what"
        " served the rest of the load; make the scenario's command the program"
        f" that serves, not one that execs it (see {service.log_path})"
    )


def _without(recorder: Recorder) -> str:
    """What a process that exec'd runs without."""
    return "without memray" if recorder.traces else "without memgate's agent"


def _port_of(url: str) -> int:
    """The TCP port ``url`` goes to."""
    parts = urllib.parse.urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)
