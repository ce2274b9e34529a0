"""Read memray's live streams of the service's processes: the live side of
:mod:`gate.capture`, with the same reading (``snapshots()``, ``live_bytes_by_stack``).

memgate's agent starts a ``memray.Tracker`` on a ``SocketDestination`` in the service's
main process (on the port memgate chose) and in every process it forks: there the agent
picks a free port, writes it to ``FOLDER/live.PID.port`` (ASCII and a newline, renamed
into place) and starts a tracker on it. Each tracker blocks until a reader connects.
:class:`LiveCapture` connects a ``memray.SocketReader`` to each and polls them from one
thread. A poll is memray's current snapshot: the live bytes of every stack, as the
reader's own thread has aggregated the stream so far.

Memory is bounded by the stacks times the points kept, not by the run's length: each
process keeps at most ``max_points`` polls. When a poll would exceed that, every other
kept poll is dropped (the first and the new one stay) and that process's polling
interval doubles, so its points stay evenly spaced over its own life; a fork started
late keeps finer spacing than the main process (the runner reads forks at the main
process's points, each at its last snapshot before). The last poll (taken by
:meth:`LiveCapture.stop`, or when a stream ends) is always kept. Besides, memray's reader
holds every live allocation of the service (not its history) in this process.

What memray 1.20's ``SocketReader`` does, read in its source and seen here:

- ``__enter__`` connects, retrying every 0.5 s without end while nothing listens (only
  a signal to the main thread breaks the loop); then it reads the stream's header
  *holding the GIL*. So it is called only once the tracker's port is listening (seen in
  ``/proc/net/tcp``: a probe connection would be the one the tracker accepts). A
  tracker accepts, then writes its header when it is entered: the agent does both at
  once; one that accepted and never wrote would stall this process.
- A stream that is not memray's (or of another memray version) fails ``__enter__`` with
  an ``OSError``. A stream that ends (the process exited, or sent bad records) turns
  ``is_active`` false; ``get_current_snapshot`` still answers with everything the
  stream sent, which is then the process's last poll.
- The tracker sends its records in blocks of 4 KiB (``PIPE_BUF``) and flushes only
  when a block is full: under load that is a fraction of a millisecond, but a process
  that stops allocating leaves its last records unsent until more follow, so a poll
  may miss up to 4 KiB of records (seen here: 100 allocations of an idle process
  stayed unseen for seconds, until its stream ended).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import gc
import operator
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gate.capture import StackLiveBytes, _reason
from gate.errors import RunError, one_line
from gate.interpreter import AGENT, without_agent
from gate.model import Frame, MemorySnapshot

if TYPE_CHECKING:
    from memray import AllocationRecord, SocketReader

STOP_TIMEOUT_S = 15.0
"""How long :meth:`LiveCapture.stop` waits for the reading thread's last polls."""
READING_ENDED = "live.ended"
"""The agent's ``READING_ENDED``: a process forked once it exists gets no tracker."""
BEHIND_BYTES = 1 << 20
"""Records waiting in a stream's socket beyond which memgate's reading is behind."""
RESOLVE_S = 0.02
"""Seconds of each poll given to resolving the stacks of new stack ids."""
RELIEF_MOST_S = 0.5
"""The longest pause a slow poll earns: the first polls, which resolve thousands of new
stacks once, take seconds, and must not leave the start of the load unread."""
BACKLOG_EVERY_S = 1.0
"""How often each stream's socket backlog is read from ``/proc``."""
RELIEF = 2.0
"""A poll is followed by at least this many times its own duration without one: polling a
process takes at most a third of the time, however many stacks it keeps alive (the
readings compete with the service and the load for the machine's cores)."""
PORT_FILE = re.compile(r"live\.([0-9]+)\.port")
"""The name of the file a forked process announces its tracker's port in."""

_PORT_TEXT = re.compile(r"([0-9]{1,5})\n")

_STACK_ID = operator.attrgetter("stack_id")
_SIZE = operator.attrgetter("size")

_Place = tuple[str, str, int]
_Stack = tuple[Frame, ...]


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


class LiveProcess:
    """One process's stream, as read so far: a poll's time, heap and live bytes by stack.

    Written by :class:`LiveCapture`'s thread only; read it after :meth:`LiveCapture.stop`.
    """

    def __init__(
        self,
        pid: int,
        reader: SocketReader,
        frames: dict[_Place, Frame],
        capacity: int,
        interval_s: float,
    ) -> None:
        self.pid = pid
        self.interval_s = interval_s
        """Seconds between this process's polls: doubles each time its points are thinned."""
        self.ended = False
        """Its stream ended (the process exited): it is polled no more."""
        self.port = 0
        self.backlog_due = 0.0
        """``time.monotonic()`` when its socket's backlog is next read."""
        """The tracker's port on 127.0.0.1."""
        self.next_due = time.monotonic()
        """``time.monotonic()`` when its next poll is due."""
        self._reader: SocketReader | None = reader
        self._series_lock = threading.Lock()  # times and heaps, read while it runs
        self._frames = frames  # one Frame per place, shared by all processes
        self._capacity = capacity
        # memray's stack_id is an index into the reader's FrameTree, which only ever
        # appends nodes (frame_tree.h), and frame ids name registered frames for good:
        # a stack_id names one stack for the reader's life, so it is resolved once.
        # (stack_trace() trims the frames above the tracker when the record's thread is
        # the main one, and a record of merged threads carries one of their ids; but a
        # path of the tree starts at its thread's outermost frame, and no other thread
        # starts at the main thread's: the trimming is the same for every record of it.)
        # Each stack_id gets a number at once; its stack is resolved later, a little in
        # each poll (resolving costs 40-70 us a stack: thousands of new stacks at the
        # start of a load would stall the readings for seconds) and the rest before the
        # stream is closed. Numbers whose stacks resolve alike are summed when read.
        self._number_of_id = np.full(1024, -1, dtype=np.int64)
        self._stacks: list[_Stack | None] = []
        self._unresolved: dict[int, AllocationRecord] = {}
        self._times: list[float] = []
        self._heaps: list[int] = []
        self._live: list[np.ndarray] = []  # by stack number; stacks seen later are longer

    def snapshots(self) -> list[MemorySnapshot]:
        """One per kept poll: its time, the live bytes of all stacks as heap, RSS 0 (taken
        from ``/proc`` elsewhere)."""
        return [
            MemorySnapshot(t=t, rss=0, heap=heap)
            for t, heap in zip(self._times, self._heaps, strict=True)
        ]

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        """Live bytes of each Python stack at each poll index in ``indexes`` (0 at a
        negative index: the process was not running), as
        :meth:`gate.capture.Capture.live_bytes_by_stack` gives them: records that differ
        only by thread or allocator merged, innermost frame first."""
        chosen = [self._live[i] if i >= 0 else None for i in indexes]
        groups: dict[_Stack, int] = {}
        group_of = np.empty(len(self._stacks), dtype=np.int64)
        for number, stack in enumerate(self._stacks):
            # A stack never resolved (its stream broke off) has no Python frame to show.
            group_of[number] = groups.setdefault(stack or (), len(groups))
        totals = np.zeros((len(groups), len(chosen)), dtype=np.int64)
        for column, live in enumerate(chosen):
            if live is not None:
                np.add.at(totals[:, column], group_of[: len(live)], live)
        for stack, row in zip(groups, totals, strict=True):
            yield StackLiveBytes(stack=stack, live=tuple(row.tolist()))

    def poll(self) -> int:
        """Take one poll and keep it; the number of stacks live in it. Once the stream
        has ended, that poll (everything the stream sent) is the last."""
        reader = self._reader
        assert reader is not None, "poll of a closed stream"
        active = reader.is_active  # before the snapshot: if it ended, the snapshot is whole
        t = time.time()
        started = time.monotonic()
        with _gc_paused():
            live = self._live_bytes(reader)
            self._keep(t, live)
            took = time.monotonic() - started
            self.resolve(RESOLVE_S)
        self._schedule(took)
        if not active:
            self.close()
            self.ended = True
        return int(np.count_nonzero(live))

    def write_flamegraph(self, path: Path, trace_python_allocators: bool) -> None:
        """memray's flame graph of the allocations alive now (``memray flamegraph``'s
        page, from the stream's current snapshot), memgate's agent cut from its stacks."""
        from memray import FileFormat, Metadata
        from memray import MemorySnapshot as MemraySnapshot
        from memray.reporters.flamegraph import FlameGraphReporter

        reader = self._reader
        if reader is None:
            return
        native = reader.has_native_traces
        with _gc_paused():
            served = [_Served(r, native) for r in reader.get_current_snapshot(merge_threads=True)]
        records: list[Any] = [record for record in served if not record.the_agents]
        with self._series_lock:
            times, heaps = list(self._times), list(self._heaps)
        started = datetime.datetime.fromtimestamp(times[0] if times else time.time())
        ended = datetime.datetime.fromtimestamp(times[-1] if times else time.time())
        reporter = FlameGraphReporter.from_snapshot(
            records,
            memory_records=[
                MemraySnapshot(int(t * 1000), 0, h) for t, h in zip(times, heaps, strict=True)
            ],
            native_traces=native,
        )
        metadata = Metadata(
            start_time=started,
            end_time=ended,
            total_allocations=sum(r.n_allocations for r in records),
            total_frames=0,
            peak_memory=max(heaps, default=0),
            command_line=" ".join(
                word for word in (reader.command_line or "").split() if word != str(AGENT)
            ),
            pid=self.pid,
            main_thread_id=0,
            python_allocator="pymalloc",
            has_native_traces=native,
            trace_python_allocators=trace_python_allocators,
            file_format=FileFormat.ALL_ALLOCATIONS,
        )
        with open(path, "w", encoding="utf-8") as out:
            reporter.render(
                out, metadata, show_memory_leaks=False, merge_threads=True, inverted=False
            )

    def resolve(self, budget_s: float | None = None) -> None:
        """Resolve the stacks of numbered stack ids, for at most ``budget_s`` seconds
        (all of them with ``None``): the stream must still be open."""
        if not self._unresolved:
            return
        end = time.monotonic() + budget_s if budget_s is not None else float("inf")
        frames = self._frames
        for number in list(self._unresolved):
            record = self._unresolved.pop(number)
            stack = []
            for place in record.stack_trace():
                frame = frames.get(place)
                if frame is None:
                    frame = frames[place] = Frame(function=place[0], file=place[1], line=place[2])
                stack.append(frame)
            self._stacks[number] = tuple(stack)
            if time.monotonic() >= end:
                return

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError, RuntimeError, ValueError), _gc_paused():
                self.resolve()
            reader, self._reader = self._reader, None
            reader.__exit__(None, None, None)

    def _live_bytes(self, reader: SocketReader) -> np.ndarray:
        """Live bytes by stack number now; new stack ids are numbered, to be resolved later."""
        records = list(reader.get_current_snapshot(merge_threads=True))
        ids = np.fromiter(map(_STACK_ID, records), dtype=np.int64, count=len(records))
        sizes = np.fromiter(map(_SIZE, records), dtype=np.int64, count=len(records))
        if len(ids) and ids.max() >= len(self._number_of_id):
            grown = np.full(max(2 * len(self._number_of_id), ids.max() + 1), -1, dtype=np.int64)
            grown[: len(self._number_of_id)] = self._number_of_id
            self._number_of_id = grown
        numbers = self._number_of_id[ids]
        for i in np.flatnonzero(numbers < 0).tolist():
            number = self._number_of_id[ids[i]]  # another record of this poll numbered it
            if number < 0:
                number = self._number_of_id[ids[i]] = len(self._stacks)
                self._stacks.append(None)
                self._unresolved[number] = records[i]
            numbers[i] = number
        live = np.zeros(len(self._stacks), dtype=np.int64)
        np.add.at(live, numbers, sizes)
        return live

    def _schedule(self, took: float) -> None:
        """The next poll: one interval on, and no sooner than :data:`RELIEF` times what
        this one took from its end (polls hold the GIL: reading a service of many stacks
        must leave memgate time to do the rest)."""
        self.next_due += self.interval_s
        now = time.monotonic()
        while self.next_due <= now:  # fell behind: skip a turn, keep the cadence
            self.next_due += self.interval_s
        self.next_due = max(self.next_due, now + min(RELIEF * took, RELIEF_MOST_S))

    def heap_series(self) -> tuple[list[float], list[int]]:
        """The times and heaps of the polls kept so far: safe while it is read."""
        with self._series_lock:
            return list(self._times), list(self._heaps)

    def _keep(self, t: float, live: np.ndarray) -> None:
        with self._series_lock:
            if len(self._times) == self._capacity:
                # Of the capacity + 1 evenly spaced polls (this one too, capacity even),
                # keep every other: the first and this one stay, the spacing doubles.
                self._times = self._times[::2]
                self._heaps = self._heaps[::2]
                self._live = self._live[::2]
                self.interval_s *= 2
            self._times.append(t)
            self._heaps.append(int(live.sum()))
            self._live.append(live)


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
        self._capacity = max_points - max_points % 2  # thinning keeps every other of cap + 1
        self._frames: dict[_Place, Frame] = {}
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
        while self.port not in _listening_ports():
            if not alive():
                raise RunError("it exited before memray's tracker in it was listening")
            if time.monotonic() >= deadline:
                raise RunError(
                    f"no memray tracker listened on 127.0.0.1:{self.port} "
                    f"within {self.connect_timeout_s:g} s"
                )
            time.sleep(0.05)
        reader = _open(self.port)
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
            )

    def heap_so_far(self) -> tuple[list[float], list[int]]:
        """While it runs: the main process's poll times so far, and at each the heap of
        every process read (a fork at its last poll before; none before its first)."""
        if self._main is None:
            return [], []
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
                self._problem(f"{folder / name}: flame graph not written: {_reason(exc)}")

    def _all(self) -> list[LiveProcess]:
        return [self._main, *self._forks] if self._main is not None else list(self._forks)

    def _run(self) -> None:
        try:
            next_watch = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= next_watch:
                    self._watch(now)
                    next_watch = now + self.interval_s
                for process in self._all():
                    if not process.ended and now >= process.next_due:
                        self._poll(process)
                wake = min([next_watch, *(p.next_due for p in self._all() if not p.ended)])
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

    def _poll(self, process: LiveProcess) -> None:
        started = time.perf_counter()
        try:
            stacks = process.poll()
        except (OSError, RuntimeError, ValueError, MemoryError) as exc:
            process.close()
            process.ended = True
            self._problem(f"process {process.pid}: poll failed: {_reason(exc)}", lost=True)
            return
        took = time.perf_counter() - started
        backlog = -1
        if process.port and time.monotonic() >= process.backlog_due:  # /proc costs too
            backlog = _backlog(process.port)
            process.backlog_due = time.monotonic() + BACKLOG_EVERY_S
        with self._lock:
            if backlog >= 0:
                self._max_backlog = max(self._max_backlog, backlog)
                self._backlog_reads += 1
                self._behind_polls += backlog >= BEHIND_BYTES
            self._polls += 1
            self._durations.append(took)
            self._max_poll_s = max(self._max_poll_s, took)
            if process is self._main:
                self._last_poll_stacks = stacks

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
                self._problem(f"{entry.path}: unreadable: {_reason(exc)}")
                continue
            match = _PORT_TEXT.fullmatch(text)
            if match is None or not 0 < int(match[1]) < 65536:
                self._problem(f"{entry.path}: not a port number and a newline: {text[:20]!r}")
                continue
            self._pending.append(_Pending(Path(entry.path), int(name[1]), int(match[1]), now))
        if not self._pending:
            return
        listening = _listening_ports()
        waiting = []
        for pending in self._pending:
            if pending.port in listening:
                try:
                    reader = _open(pending.port)
                except RunError as exc:
                    self._problem(f"{pending.path}: {exc}")
                    continue
                pid = reader.pid if reader.pid is not None else pending.pid
                fork = LiveProcess(pid, reader, self._frames, self._capacity, self.interval_s)
                fork.port = pending.port
                self._forks.append(fork)
            elif not _alive(pending.pid):
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


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection during a poll: it makes tens of thousands of short-lived
    objects (memray's records) and, the first time, the stacks' frames, none in a
    cycle; the collections they set off took half of a poll of 30,000 stacks."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _open(port: int) -> SocketReader:
    """A reader connected to the tracker listening on ``port``, its header read."""
    from memray import SocketReader

    reader = SocketReader(port)
    try:
        reader.__enter__()
    except (OSError, RuntimeError, ValueError) as exc:
        raise RunError(f"127.0.0.1:{port}: not a memray stream: {_reason(exc)}") from None
    return reader


_LOOPBACK = {
    "/proc/net/tcp": {"0100007F", "7F000001", "00000000"},  # 127.0.0.1 (LE, BE), any
    "/proc/net/tcp6": {"00000000000000000000000001000000", "0" * 32},  # ::1, any
}
_LISTEN = "0A"
_ESTABLISHED = "01"


def _listening_ports() -> set[int]:
    """The TCP ports a connection to the loopback would find listening (Linux)."""
    ports = set()
    for table, addresses in _LOOPBACK.items():
        try:
            text = Path(table).read_text("ascii")
        except OSError as exc:
            if table == "/proc/net/tcp":
                raise RunError(f"live reading needs Linux's {table}: {_reason(exc)}") from None
            continue  # no IPv6
        for line in text.splitlines()[1:]:
            fields = line.split(maxsplit=4)
            if len(fields) > 3 and fields[3] == _LISTEN:
                address, _, port = fields[1].partition(":")
                if address in addresses:
                    ports.add(int(port, 16))
    return ports


class _Served:
    """A record of memray's snapshot as the service's code made it: the stack without
    memgate's agent (what memray's flame graph reads of a record)."""

    def __init__(self, record: AllocationRecord, native: bool) -> None:
        self.tid = record.tid
        self.thread_name = record.thread_name
        self.size = record.size
        self.n_allocations = record.n_allocations
        places = list(record.hybrid_stack_trace() if native else record.stack_trace())
        kept = without_agent(tuple(Frame(*place) for place in places))
        self.the_agents = kept is None
        """An allocation of the agent's own, not the service's."""
        self._stack = places[: len(kept)] if kept is not None else []

    def stack_trace(self) -> list[Any]:
        return self._stack

    hybrid_stack_trace = stack_trace


def _backlog(port: int) -> int:
    """Bytes waiting to be read in memgate's connections to 127.0.0.1:``port`` (Linux's
    ``rx_queue``); 0 where it cannot be read."""
    waiting = 0
    for table in _LOOPBACK:
        try:
            text = Path(table).read_text("ascii")
        except OSError:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split(maxsplit=5)
            if len(fields) > 4 and fields[3] == _ESTABLISHED:
                remote = fields[2].rpartition(":")[2]
                if int(remote, 16) == port:
                    waiting += int(fields[4].partition(":")[2], 16)
    return waiting


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
