"""The service's process tree seen from outside (psutil): memory, threads, descriptors,
sockets and processes, summed over the tree, at one moment."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable

import psutil


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


def sample_tree(root: psutil.Process, seen: dict[int, psutil.Process]) -> RawProcessSample | None:
    """The tree's figures now; every process of it is added to ``seen``."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    for proc in procs:
        seen.setdefault(proc.pid, proc)
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


def loaded_libraries(pids: Iterable[int]) -> tuple[str, ...]:
    """The files mapped into the processes ``pids`` (those still running), each once, in
    the order first seen: read while the service runs, for :mod:`gate.service.native` to look
    native frames' functions up in after it stopped."""
    seen: dict[str, None] = {}
    for pid in pids:
        try:
            maps = psutil.Process(pid).memory_maps(grouped=True)
        except (psutil.Error, OSError):
            continue
        for mapping in maps:
            if mapping.path.startswith("/"):
                seen.setdefault(mapping.path)
    return tuple(seen)


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


MEMRAY_LIBRARY = "/memray/_memray."
"""What memray's extension module's path contains: a process of the service whose memory
map lacks it runs no memray any more (it exec'd another program)."""


def outside_tree(pid: int, root: int) -> bool:
    """Whether process ``pid`` is neither ``root`` nor one of its descendants (asked of
    its parents now: a worker forked since the tree was listed is inside)."""
    if pid == root:
        return False
    try:
        return all(parent.pid != root for parent in psutil.Process(pid).parents())
    except psutil.Error:
        return False  # gone: it serves nothing any more


def maps_memray(pid: int) -> bool | None:
    """Whether memray's extension is in process ``pid``'s memory map; ``None`` when that
    cannot be told (no ``/proc``, gone, a zombie's empty map)."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
            text = maps.read()
    except OSError:
        return None
    if not text:
        return None
    return MEMRAY_LIBRARY in text


def command_of(pid: int) -> str:
    """``sleep 600``: the command line process ``pid`` runs now (its program's name, not
    its path), shortened, quoted."""
    try:
        argv = psutil.Process(pid).cmdline()
        command = " ".join([os.path.basename(argv[0]), *argv[1:]] if argv else [])
    except psutil.Error:
        return "another program"
    command = command if len(command) <= 200 else command[:197] + "..."
    return f"`{command}`" if command else "another program"


def is_stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP, SIGTSTP, or held by a tracer)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


def marked(name: str, value: str) -> list[psutil.Process]:
    """This user's processes whose environment holds ``name=value``: what a service
    started, wherever it went (reparented, in a session of its own), unless it cleared
    its environment."""
    uid = os.getuid()
    found = []
    for proc in psutil.process_iter(["uids"]):
        try:
            uids = proc.info["uids"]
            if uids is not None and uids.real == uid and proc.environ().get(name) == value:
                found.append(proc)
        except psutil.Error:
            continue
    return found
