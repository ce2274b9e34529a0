"""The service's live streams: its main process's and each fork's, polled from one
thread (see the package's docstring)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import re
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gate.analysis.curve import summed_at_collections
from gate.errors import RunError, one_line
from gate.model import Frame
from gate.recording.capture_file import Place, memray_reason
from gate.recording.live.collections import RETAINED_WATCH_S, FullCollectionPolls
from gate.recording.live.process import LiveProcess
from gate.recording.live.sockets import open_reader, process_alive
from gate.tcp_table import backlogs, listening_ports

STOP_TIMEOUT_S = 15.0
"""How long :meth:`LiveCapture.stop` waits for the reading thread's last polls."""
READING_ENDED = "live.ended"
"""The agent's ``READING_ENDED``: a process forked once it exists gets no tracker."""
BEHIND_BYTES = 1 << 20
"""Records waiting in a stream's socket beyond which memgate's reading is behind."""
BACKLOG_EVERY_S = 1.0
"""How often the streams' socket backlogs are read (from the kernel, all at once)."""
PORT_FILE = re.compile(r"live\.([0-9]+)\.port")
"""The name of the file a forked process announces its tracker's port in."""

_PORT_TEXT = re.compile(r"([0-9]{1,5})\n")


@dataclasses.dataclass(frozen=True)
class LiveStats:
    """How the live reading went, for the run's output and the benchmarks."""

    polls: int
    """Polls taken, all processes together (thinned ones included)."""
    median_poll_s: float
    """Median seconds a poll took (of the last 1024)."""
    max_poll_s: float
    """Longest poll, in seconds."""
    last_poll_stacks: int
    """Stacks with live bytes in the main process's last poll."""
    max_backlog_bytes: int
    """The most bytes of records seen waiting in a stream's socket, unread by memray's
    reader in memgate: when it falls behind, the tracker's writes block the service."""
    behind_polls: int
    """Readings of a socket's backlog (one a second) that found at least
    :data:`BEHIND_BYTES` waiting."""
    backlog_reads: int
    """Readings of a socket's backlog."""
    problems: tuple[str, ...]
    """Forks announced but never read, and polls that failed: one line each."""
    retained_missed: int = 0
    """Full collections whose heap was not read: the stream did not show the marker the
    agent allocated after it within ``RETAINED_GIVE_UP_S``, or the next one came first."""


class LiveCapture:
    """The live streams of the service's main process (on ``port``) and of the
    processes it forks (announced in ``folder``).

    :meth:`connect` connects to the main process and starts one thread that polls every
    process and watches ``folder``; :meth:`stop` takes a last poll of each and ends it.
    Read :meth:`processes` after :meth:`stop`: the thread writes them while it runs.
    """

    def __init__(
        self,
        port: int,
        folder: Path,
        *,
        interval_s: float = 0.25,
        max_points: int = 400,
        connect_timeout_s: float = 30.0,
        flamegraphs: Path | None = None,
        trace_python_allocators: bool = True,
        full_collections: bool = True,
    ) -> None:
        if max_points < 2 or not interval_s > 0 or not connect_timeout_s >= 0:
            raise ValueError("need max_points >= 2, interval_s > 0, connect_timeout_s >= 0")
        self.port = port
        self.folder = folder
        self.interval_s = interval_s
        self.max_points = max_points
        self.connect_timeout_s = connect_timeout_s
        self.flamegraphs = flamegraphs
        """Where to write memray's flame graph of each process at the end, if anywhere."""
        self.trace_python_allocators = trace_python_allocators
        self.full_collections = full_collections
        """Whether the agent writes full collections to read the heap right after
        (``[profile] retained_heap``): else their files are never looked for."""
        self._capacity = max_points - max_points % 2  # thinning keeps every other of cap + 1
        self._frames: dict[Place, Frame] = {}
        self._main: LiveProcess | None = None
        self._forks: list[LiveProcess] = []
        self._announced: dict[str, tuple[int, int]] = {}  # port file name: (inode, mtime)
        self._pending: list[_Pending] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = False
        self._failure: str | None = None
        self._lock = threading.Lock()  # guards the figures below, read by stats
        self._polls = 0
        self._durations: collections.deque[float] = collections.deque(maxlen=1024)
        self._max_poll_s = 0.0
        self._last_poll_stacks = 0
        self._max_backlog = 0
        self._behind_polls = 0
        self._backlog_reads = 0
        self._problems: list[str] = []
        self._lost: str | None = None
        self._collections = FullCollectionPolls(folder, self._lock)

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def connect(self, alive: Callable[[], bool] = lambda: True) -> None:
        """Connect to the main process's tracker, waiting up to ``connect_timeout_s`` for
        it to listen while ``alive()`` says the process runs, and start the polling
        thread."""
        if self._main is not None or self._stopped:
            raise ValueError("connect() may be called once, before stop()")
        deadline = time.monotonic() + self.connect_timeout_s
        while self.port not in listening_ports():
            if not alive():
                raise RunError("it exited before memray's tracker in it was listening")
            if time.monotonic() >= deadline:
                raise RunError(
                    f"no memray tracker listened on 127.0.0.1:{self.port} "
                    f"within {self.connect_timeout_s:g} s"
                )
            time.sleep(0.05)
        reader = open_reader(self.port)
        pid = reader.pid
        self._main = LiveProcess(
            pid if pid is not None else -1, reader, self._frames, self._capacity, self.interval_s
        )
        self._main.port = self.port
        self._thread = threading.Thread(target=self._run, name="memgate-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take a last poll of every process still streaming, end the thread and close
        every reader. Idempotent; harmless before or after a failed :meth:`connect`."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError):  # forks from now on get no tracker to wait in
            (self.folder / READING_ENDED).write_text("")
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():  # stuck in memray (a connect retried for ever)
                self._failure = f"live reading did not end within {STOP_TIMEOUT_S:g} s"
                return
        for process in self._all():
            process.close()

    def processes(self) -> list[LiveProcess]:
        """The main process first, then the forks read, in pid order."""
        if self._failure is not None:
            raise RunError(self._failure)
        if self._lost is not None:
            raise RunError(f"live reading lost a process: {self._lost}")
        forks = sorted(self._forks, key=lambda p: p.pid)
        return [self._main, *forks] if self._main is not None else forks

    def fork_pids(self) -> list[int]:
        """While it runs: the forks read, but those whose stream ended."""
        return [fork.pid for fork in list(self._forks) if not fork.ended]

    def main_ended(self) -> bool:
        """Whether the main process's stream ended (it exited, or closed memray's socket)
        before :meth:`stop`, not by a failed poll: read while the polling thread runs."""
        ended = self._main is not None and self._main.ended
        return ended and not self._stopped and self._lost is None  # not a failed poll

    @property
    def stats(self) -> LiveStats:
        with self._lock:
            durations = list(self._durations)
            return LiveStats(
                polls=self._polls,
                median_poll_s=statistics.median(durations) if durations else 0.0,
                max_poll_s=self._max_poll_s,
                last_poll_stacks=self._last_poll_stacks,
                max_backlog_bytes=self._max_backlog,
                behind_polls=self._behind_polls,
                backlog_reads=self._backlog_reads,
                problems=tuple(self._problems),
                retained_missed=self._collections.missed,
            )

    def heap_so_far(self, min_retained: int = 0) -> tuple[list[float], list[int]]:
        """While it runs: the service's heap so far, as the run's analysis judges it.
        Once there are ``min_retained`` points right after full collections (if not 0):
        those (of a service that forks, summed at the collections of the process that
        collected most, the others read between two of theirs:
        :func:`gate.analysis.curve.summed_at_collections`). Before: the main process's
        poll times, and at each the heap of every process read (a fork at its last poll
        before; none before its first)."""
        if self._main is None:
            return [], []
        running = [p for p in self._all() if not p.ended]
        if min_retained and running and running[0] is self._main:
            kept = [p.retained_series() for p in running]
            series = [(np.asarray(t, dtype=float), np.asarray(h, dtype=float)) for t, h in kept]
            summed = summed_at_collections(series)
            if summed is not None and len(summed[0]) >= min_retained:
                return summed[0].tolist(), [round(h) for h in summed[1].tolist()]
        times, heap = self._main.heap_series()
        total = np.asarray(heap, dtype=np.int64)
        for fork in list(self._forks):
            if fork.ended:  # a worker that ended (recycled) holds nothing any more
                continue
            theirs, heaps = fork.heap_series()
            if not theirs:
                continue
            at = np.searchsorted(np.asarray(theirs), np.asarray(times), side="right") - 1
            total += np.where(at >= 0, np.asarray(heaps, dtype=np.int64)[at.clip(0)], 0)
        return times, total.tolist()

    def _write_flamegraphs(self, folder: Path) -> None:
        """memray's flame graph of each process still streaming, at its last poll:
        ``flamegraph.html``, ``flamegraph.PID.html`` for a fork. A failure is a problem
        noted, never the run's."""
        for process in self._all():
            if process.ended:
                continue
            name = "flamegraph.html" if process is self._main else f"flamegraph.{process.pid}.html"
            try:
                process.write_flamegraph(folder / name, self.trace_python_allocators)
            except (OSError, RuntimeError, ValueError) as exc:
                self._problem(f"{folder / name}: flame graph not written: {memray_reason(exc)}")

    def _all(self) -> list[LiveProcess]:
        return [self._main, *self._forks] if self._main is not None else list(self._forks)

    def _run(self) -> None:
        try:
            next_watch = next_backlog = next_full = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= next_watch:
                    self._watch(now)
                    next_watch = now + self.interval_s
                if now >= next_backlog:
                    self._read_backlogs()
                    next_backlog = now + BACKLOG_EVERY_S
                if now >= next_full:
                    self._collections.watch(self._all(), now)
                    next_full = now + RETAINED_WATCH_S if self.full_collections else math.inf
                for process in self._all():
                    if not process.ended and self._collections.due(process, now):
                        self._poll_retained(process, now)
                # A poll takes tens of milliseconds: none starts while a full collection
                # comes or waits for its own, read as soon as it ended (the garbage the
                # service makes meanwhile is in that reading).
                quiet = self._collections.quiet(self._all(), time.monotonic())
                for process in self._all():
                    if not process.ended and not quiet and now >= process.next_due:
                        self._poll(process)
                due = (p.next_due for p in self._all() if not p.ended and not quiet)
                wake = min(next_watch, next_backlog, next_full, *due)
                if self._stopping.wait(max(0.0, wake - time.monotonic())):
                    break
            for process in self._all():
                if not process.ended:
                    self._poll(process)
            if self.flamegraphs is not None:
                self._write_flamegraphs(self.flamegraphs)
            for pending in self._pending:
                self._problem(
                    f"{pending.path}: announced, but its tracker was never read", lost=True
                )
        except Exception as exc:  # a bug here must not pass as a short capture
            self._failure = one_line(f"live reading failed: {type(exc).__name__}: {exc}")
        finally:
            for process in self._all():
                process.close()

    def _poll_retained(self, process: LiveProcess, now: float) -> None:
        """Poll ``process`` as the heap right after its last full collection (see
        :meth:`FullCollectionPolls.polled`)."""
        started = time.monotonic()
        kept = self._poll(process, retained=True, mark=process.retained_mark)
        self._collections.polled(process, kept, time.monotonic() - started, now)

    def _poll(self, process: LiveProcess, retained: bool = False, mark: int | None = None) -> bool:
        """Poll ``process``; whether the poll was kept."""
        started = time.perf_counter()
        try:
            stacks, kept = process.poll(retained, mark)
        except (OSError, RuntimeError, ValueError, MemoryError) as exc:
            process.close()
            process.ended = True
            self._problem(f"process {process.pid}: poll failed: {memray_reason(exc)}", lost=True)
            return False
        took = time.perf_counter() - started
        with self._lock:
            self._polls += 1
            self._durations.append(took)
            self._max_poll_s = max(self._max_poll_s, took)
            if process is self._main:
                self._last_poll_stacks = stacks
        return kept

    def _read_backlogs(self) -> None:
        """The bytes waiting unread in each stream's socket, all read at once."""
        streaming = [p.port for p in self._all() if not p.ended and p.port]
        if not streaming:
            return
        waiting = backlogs()
        with self._lock:
            for port in streaming:
                backlog = waiting.get(port, 0)
                self._max_backlog = max(self._max_backlog, backlog)
                self._backlog_reads += 1
                self._behind_polls += backlog >= BEHIND_BYTES

    def _watch(self, now: float) -> None:
        """Read new port files; connect to each announced tracker once it listens."""
        try:
            with os.scandir(self.folder) as entries:
                found = [(e, m) for e in entries if (m := PORT_FILE.fullmatch(e.name))]
        except OSError:
            found = []  # no folder yet: no fork yet
        for entry, name in found:
            try:
                info = entry.stat()
                key = (info.st_ino, info.st_mtime_ns)
                if self._announced.get(entry.name) == key:
                    continue
                self._announced[entry.name] = key
                text = Path(entry.path).read_text("ascii")
            except (OSError, UnicodeDecodeError) as exc:
                self._problem(f"{entry.path}: unreadable: {memray_reason(exc)}")
                continue
            match = _PORT_TEXT.fullmatch(text)
            if match is None or not 0 < int(match[1]) < 65536:
                self._problem(f"{entry.path}: not a port number and a newline: {text[:20]!r}")
                continue
            self._pending.append(_Pending(Path(entry.path), int(name[1]), int(match[1]), now))
        if not self._pending:
            return
        listening = listening_ports()
        waiting = []
        for pending in self._pending:
            if pending.port in listening:
                try:
                    reader = open_reader(pending.port)
                except RunError as exc:
                    self._problem(f"{pending.path}: {exc}")
                    continue
                pid = reader.pid if reader.pid is not None else pending.pid
                fork = LiveProcess(pid, reader, self._frames, self._capacity, self.interval_s)
                fork.port = pending.port
                self._forks.append(fork)
            elif not process_alive(pending.pid):
                self._problem(f"{pending.path}: process {pending.pid} ended before it listened")
            elif now - pending.since > self.connect_timeout_s:
                self._problem(
                    f"{pending.path}: nothing listened on 127.0.0.1:{pending.port} "
                    f"within {self.connect_timeout_s:g} s"
                )
            else:
                waiting.append(pending)
        self._pending = waiting

    def _problem(self, text: str, lost: bool = False) -> None:
        """Note a problem; ``lost``: a process's memory was not read through to the end
        (then :meth:`processes` refuses the reading)."""
        with self._lock:
            self._problems.append(one_line(text))
            if lost and self._lost is None:
                self._lost = one_line(text)


@dataclasses.dataclass(frozen=True)
class _Pending:
    """A fork's port file read, its tracker not yet connected."""

    path: Path
    pid: int
    port: int
    since: float
    """``time.monotonic()`` when the file was read."""
