"""The ``counters`` recorder: no allocation is traced. memgate's agent in each process
reads the bytes the process's allocators hold (pymalloc's allocated blocks and malloc's
bytes in use) and its RSS every 100 ms and right after each full collection, and
appends them to files memgate reads while the load runs.

The service runs near its own speed, and the heap (right after full collections) is
known exactly; what is not known is where it was allocated: no stack is recorded, so a
run gives no sites. A traced run (``live``) names them."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import psutil

from gate.agent.memgate_agent import FULL_FILE, HEAP_INTERVAL_S
from gate.analysis.curve import summed_at_collections
from gate.errors import RunError
from gate.model import MemorySnapshot
from gate.observed import CaptureInfo
from gate.recording import Recorded, Timing
from gate.recording.capture_file import StackLiveBytes
from gate.service.agent_files import heap_files, read_heap_counters, read_retained_counters

ENDED_S = 2.5
"""A process's counters older than this at a time (the agent writes them every second at
the least) are not summed there: the process had ended (a recycled worker)."""
CONNECT_S = 10.0
"""How long the service's main process has, once started, to write its first counters."""


class Counted:
    """One process's counters, read from its files: a :class:`gate.recording.Recording`
    with no stacks."""

    def __init__(self, snapshots: list[MemorySnapshot]) -> None:
        self._snapshots = snapshots

    def snapshots(self) -> list[MemorySnapshot]:
        return self._snapshots

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        return iter(())


NO_THREAD_CACHE = "glibc.malloc.tcache_count=0"
"""glibc's tunable that turns off its per-thread caches (tcache) in the service: a chunk
freed into a thread's cache is still in use to ``mallinfo2``, so a service whose threads
meet new sizes of allocation as it runs grows by what the caches keep (up to about 200
KiB a thread). The queue example's API, four long-lived connection threads, grew 27-29
B/request counted and sampled, clean (memray: flat); without the caches, -0.1.

Filling each thread's caches once instead (tried in the sampler: what a full cache holds
no longer grows) kept the queue API flat too, but a server with a thread per request
then held 240 KB more per live thread, and read a 64 B/request leak as flat in 1 of 2
runs (70.7 B/request [-21.1, 78.8]; with the caches off 74.5 [70.7, 80.6] and 72.6 [71.1,
75.0]); and in one run of 5 interleaved rounds the demo, sampled, served 0.82x its
unprofiled throughput with the caches filled, 0.81x with them off."""


def counted_env(env: Mapping[str, str]) -> dict[str, str]:
    """What a counted service's environment adds to ``env``: glibc's thread caches off
    (:data:`NO_THREAD_CACHE`), after any tunables the service already sets."""
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    tunables = [t for t in tunables if not t.startswith("glibc.malloc.tcache_count=")]
    return {"GLIBC_TUNABLES": ":".join([*tunables, NO_THREAD_CACHE])}


class CountersRecorder:
    """The agent's heap counters, one file per process in ``folder``."""

    mode = "counters"
    timing = Timing(after_end_s=1.0, late_s=0.5, stamped_in_service=True)
    streams = True  # the files are whole at any time: read while the service stops
    finishes_on_exit = False
    read_after_census = True
    traces = False
    waits_for_collections = True
    env_suffix = "counters"

    def __init__(self, folder: Path, who: str, census: bool = False) -> None:
        self.folder = folder
        self.who = who
        self.census = census
        """The service takes a census after the load: its agent writes each process's
        last point right before it (:meth:`stop` then waits for none)."""
        self._main = 0
        self._read_bytes = 0

    def agent_settings(self) -> dict[str, object]:
        return {"capture": "counters", "port": None, "file": None}

    def service_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return counted_env(env)

    def clear(self) -> None:
        for path in heap_files(self.folder).values():
            path.unlink(missing_ok=True)

    def connect(self, pid: int, alive: Callable[[], bool]) -> None:
        self._main = pid
        deadline = time.monotonic() + CONNECT_S
        while pid not in heap_files(self.folder):
            if not alive():
                return  # the service's own exit is the reason given
            if time.monotonic() > deadline:
                raise RunError(
                    f"the {self.who}'s agent wrote no heap counters in {CONNECT_S:.0f} s"
                    " (the allocators' statistics could not be read: counters need CPython"
                    ' with pymalloc or glibc; use [profile] capture = "live")'
                )
            time.sleep(HEAP_INTERVAL_S / 2)

    def forks(self) -> list[int]:
        return sorted(pid for pid in heap_files(self.folder) if pid != self._main)

    def records(self, pid: int) -> bool | None:
        """Whether process ``pid`` still runs the agent: its counters' file is open in it
        (the agent holds it open, close-on-exec: a process that exec'd has closed it);
        ``None`` when that cannot be told (no ``/proc``, a process that ended)."""
        try:  # a zombie's file descriptors are gone: it ended, it did not exec
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        path = heap_files(self.folder).get(pid)
        if path is None:
            return False
        wanted = os.path.realpath(path)
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return None
        for descriptor in descriptors:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{descriptor}") == wanted:
                    return True
        return False

    def stop(self) -> None:
        """Unless a census follows, wait (a moment at most) for the main process's
        counters after the load's end."""
        if self.census:
            return
        ended = time.time()
        deadline = time.monotonic() + 5 * HEAP_INTERVAL_S
        path = heap_files(self.folder).get(self._main)
        while path is not None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if path.stat().st_mtime > ended:
                    return
            time.sleep(HEAP_INTERVAL_S / 4)

    def stream_ended(self) -> bool:
        return self.records(self._main) is False

    def retained_so_far(self, since: float) -> int:
        summed = summed_at_collections(self._retained_series(since))
        return 0 if summed is None else len(summed[0])

    def _retained_series(
        self, since: float = 0.0, counted: list[list[MemorySnapshot]] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each process's points right after full collections from ``since`` on: times,
        heaps."""
        if counted is None:  # while the load runs: the full collections' files alone
            files = heap_files(self.folder)
            order = sorted(files, key=lambda pid: (pid != self._main, pid))
            counted = [read_retained_counters(self.folder / FULL_FILE.format(pid=p)) for p in order]
        series = []
        for theirs in counted:
            kept = [s for s in theirs if s.retained and s.t >= since]
            times = np.asarray([s.t for s in kept], dtype=float)
            series.append((times, np.asarray([s.heap for s in kept], dtype=float)))
        return series

    def heap_so_far(self, min_retained: int) -> tuple[list[float], list[int]]:
        counted = [snapshots for _, snapshots in self._read()]
        if not counted or not counted[0]:
            return [], []
        if min_retained:
            summed = summed_at_collections(self._retained_series(counted=counted))
            if summed is not None and len(summed[0]) >= min_retained:
                return summed[0].tolist(), [round(h) for h in summed[1].tolist()]
        main = [s for s in counted[0] if not s.retained]
        times = np.asarray([s.t for s in main], dtype=float)
        total = np.asarray([s.heap for s in main], dtype=np.int64)
        for theirs in counted[1:]:
            own = [s for s in theirs if not s.retained]
            if not own:
                continue
            at = np.searchsorted([s.t for s in own], times, side="right") - 1
            heaps = np.asarray([s.heap for s in own], dtype=np.int64)
            # A process that ended (a recycled worker) holds nothing after its last line.
            running = (at >= 0) & (times <= own[-1].t + ENDED_S)
            total += np.where(running, heaps[at.clip(0)], 0)
        return times.tolist(), total.tolist()

    def open(self, main_pid: int, opened: contextlib.ExitStack, progress: bool) -> list[Recorded]:
        return [
            Recorded(pid, "", Counted(snapshots))
            for pid, snapshots in self._read(main_pid)
            if snapshots or pid == main_pid
        ]

    def _read(self, main_pid: int | None = None) -> list[tuple[int, list[MemorySnapshot]]]:
        """Each process's counters, the main process's first, then by pid."""
        main = self._main if main_pid is None else main_pid
        files = heap_files(self.folder)
        order = sorted(files, key=lambda pid: (pid != main, pid))
        self._read_bytes = 0
        read = []
        for pid in order:
            full = self.folder / FULL_FILE.format(pid=pid)
            with contextlib.suppress(OSError):
                self._read_bytes += files[pid].stat().st_size
            read.append((pid, read_heap_counters(files[pid], full)))
        return read

    def capture_info(
        self, recorded: Sequence[Recorded], snapshots: int, read_started: float, load_end: float
    ) -> CaptureInfo:
        return CaptureInfo(
            file="",
            bytes=self._read_bytes,
            read_seconds=round(time.time() - load_end, 3),
            snapshots=snapshots,
            forks=len(recorded) - 1,
            mode=self.mode,
        )

    def collections_missed(self) -> int:
        return 0

    def describe(self) -> str:
        return f"the heap counters of the {self.who}"
