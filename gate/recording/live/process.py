"""One process's live stream: polled, its points kept (thinned past their cap), its
stack ids numbered at once and resolved a little at a time; read like a capture."""

from __future__ import annotations

import contextlib
import gc
import operator
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gate.agent.memgate_agent import MARKER_FUNCTION
from gate.model import Frame, MemorySnapshot
from gate.recording.capture_file import (
    Place,
    StackLiveBytes,
    as_frames,
    by_python_stack,
    native_tail,
)
from gate.recording.live.flamegraph import write_flamegraph

if TYPE_CHECKING:
    from memray import AllocationRecord, SocketReader

_Stack = tuple[Frame, ...]

RESOLVE_S = 0.02
"""Seconds of each poll given to resolving the stacks of new stack ids."""
RELIEF_MOST_S = 0.5
"""The longest pause a slow poll earns: the first polls, which resolve thousands of new
stacks once, take seconds, and must not leave the start of the load unread."""
RELIEF = 2.0
"""A poll is followed by at least this many times its own duration without one: polling a
process takes at most a third of the time, however many stacks it keeps alive (the
readings compete with the service and the load for the machine's cores)."""
_STACK_ID = operator.attrgetter("stack_id")
_NATIVE_STACK_ID = operator.attrgetter("native_stack_id")
_SIZE = operator.attrgetter("size")


class LiveProcess:
    """One process's stream, as read so far: a poll's time, heap and live bytes by stack.

    Written by :class:`LiveCapture`'s thread only; read it after :meth:`LiveCapture.stop`.
    """

    def __init__(
        self,
        pid: int,
        reader: SocketReader,
        frames: dict[Place, Frame],
        capacity: int,
        interval_s: float,
    ) -> None:
        self.pid = pid
        self.interval_s = interval_s
        """Seconds between this process's polls: doubles each time its points are thinned."""
        self.ended = False
        """Its stream ended (the process exited): it is polled no more."""
        self.port = 0
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
        # With native traces a number stands for a stack_id and a native_stack_id.
        self._native = bool(reader.has_native_traces)
        self._number_of_id = np.full(1024, -1, dtype=np.int64)
        self._number_of_pair: dict[int, int] = {}
        self._stacks: list[_Stack | None] = []
        self._tails: list[_Stack] = []  # the native frames of each number's stack
        self._unresolved: dict[int, AllocationRecord] = {}
        self._times: list[float] = []
        self._heaps: list[int] = []
        self._live: list[np.ndarray] = []  # by stack number; stacks seen later are longer
        # The polls taken right after a full collection, kept (and thinned) apart.
        self._retained: list[tuple[float, int, np.ndarray]] = []
        self._order: list[tuple[bool, int]] = []  # snapshots()'s: (retained, index)
        self.collections_read = 0
        """Bytes of the agent's file of full collections (``full.PID.jsonl``) read."""
        self.retained_due: float | None = None
        """``time.monotonic()`` since a full collection waits for its poll."""
        self.retained_mark: int | None = None
        """The size of the marker the agent allocated after the collection waiting."""
        self.retained_retry = 0.0
        """``time.monotonic()`` before which that collection's poll is not tried again."""
        self._marks: list[AllocationRecord] = []
        """The last poll's records of the agent's marker's size (``mark``), if asked."""
        self.collecting_soon: float | None = None
        """``time.monotonic()`` when the agent said a collection of its comes soon."""

    def snapshots(self) -> list[MemorySnapshot]:
        """One per kept poll, in time order: its time, the live bytes of all stacks as
        heap, RSS 0 (taken from ``/proc`` elsewhere), and whether it was taken right after
        a full collection."""
        polls = [(t, False, i) for i, t in enumerate(self._times)]
        polls += [(t, True, i) for i, (t, _, _) in enumerate(self._retained)]
        polls.sort()
        self._order = [(retained, i) for _, retained, i in polls]
        return [
            MemorySnapshot(
                t=t,
                rss=0,
                heap=self._retained[i][1] if retained else self._heaps[i],
                retained=retained,
            )
            for t, retained, i in polls
        ]

    def _poll_live(self, index: int) -> np.ndarray:
        """The live bytes by stack number of :meth:`snapshots`'s ``index``-th."""
        if len(self._order) != len(self._times) + len(self._retained):
            self.snapshots()
        retained, i = self._order[index]
        return self._retained[i][2] if retained else self._live[i]

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        """Live bytes of each Python stack at each poll index in ``indexes`` (0 at a
        negative index: the process was not running), as
        :meth:`gate.recording.capture_file.Capture.live_bytes_by_stack` gives them:
        records that differ only by thread or allocator merged, innermost frame first."""
        chosen = [self._poll_live(i) if i >= 0 else None for i in indexes]
        # A stack never resolved (its stream broke off) has no Python frame to show.
        if not self._native:
            groups: dict[_Stack, int] = {}
            group_of = np.empty(len(self._stacks), dtype=np.int64)
            for number, stack in enumerate(self._stacks):
                group_of[number] = groups.setdefault(stack or (), len(groups))
            totals = _totals(group_of, len(groups), chosen)
            for stack, row in zip(groups, totals, strict=True):
                yield StackLiveBytes(stack=stack, live=tuple(row.tolist()))
            return
        paths: dict[tuple[_Stack, _Stack], int] = {}
        group_of = np.empty(len(self._stacks), dtype=np.int64)
        for number, (stack, tail) in enumerate(zip(self._stacks, self._tails, strict=True)):
            group_of[number] = paths.setdefault((stack or (), tail), len(paths))
        totals = _totals(group_of, len(paths), chosen)
        yield from by_python_stack(
            (stack, tail, row) for (stack, tail), row in zip(paths, totals, strict=True)
        )

    def poll(self, retained: bool = False, mark: int | None = None) -> tuple[int, bool]:
        """Take one poll and keep it (``retained``: as the heap right after a full
        collection); the number of stacks live in it, and whether it was kept as
        retained. With a ``mark``, a poll is retained only if an allocation of that size
        is alive in it (the agent made it right after the collection: the stream has
        reached past its frees); else it is kept as an ordinary poll. Once the stream has
        ended, that poll (everything the stream sent) is the last."""
        reader = self._reader
        assert reader is not None, "poll of a closed stream"
        active = reader.is_active  # before the snapshot: if it ended, the snapshot is whole
        t = time.time()
        started = time.monotonic()
        with _gc_paused():
            live = self._live_bytes(reader, mark)
            retained = retained and (mark is None or self._shows_marker())
            if retained:
                self._keep_retained(t, live)
            else:
                self._keep(t, live)
            took = time.monotonic() - started
            self.resolve(RESOLVE_S)
        if not retained:
            self._schedule(took)
        if not active:
            self.close()
            self.ended = True
        return int(np.count_nonzero(live)), retained

    def write_flamegraph(self, path: Path, trace_python_allocators: bool) -> None:
        """memray's flame graph of the allocations alive now (``memray flamegraph``'s
        page, from the stream's current snapshot), memgate's agent cut from its stacks."""
        if self._reader is None:
            return
        with self._series_lock:
            times, heaps = list(self._times), list(self._heaps)
        write_flamegraph(self._reader, self.pid, times, heaps, path, trace_python_allocators)

    def resolve(self, budget_s: float | None = None) -> None:
        """Resolve the stacks of numbered stack ids, for at most ``budget_s`` seconds
        (all of them with ``None``): the stream must still be open."""
        if not self._unresolved:
            return
        end = time.monotonic() + budget_s if budget_s is not None else float("inf")
        frames = self._frames
        for number in list(self._unresolved):
            record = self._unresolved.pop(number)
            python: list[Place] = record.stack_trace()
            self._stacks[number] = as_frames(python, frames)
            if self._native:
                self._tails[number] = as_frames(
                    native_tail(record.hybrid_stack_trace(), python), frames
                )
            if time.monotonic() >= end:
                return

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError, RuntimeError, ValueError), _gc_paused():
                self.resolve()
            reader, self._reader = self._reader, None
            reader.__exit__(None, None, None)

    def _shows_marker(self) -> bool:
        """Whether the last poll has the agent's marker alive: the size asked for, on the
        stack of the agent's function that allocates it and nothing else (another stack's
        live bytes often add up to a size near 3,000)."""
        for record in self._marks:
            with contextlib.suppress(NotImplementedError, ValueError):
                top = record.stack_trace(max_stacks=1)
                if top and top[0][0] == MARKER_FUNCTION:
                    return True
        return False

    def _live_bytes(self, reader: SocketReader, mark: int | None = None) -> np.ndarray:
        """Live bytes by stack number now; new stack ids are numbered, to be resolved
        later. With a ``mark``, the records of that size are kept (:meth:`_shows_marker`)."""
        records = list(reader.get_current_snapshot(merge_threads=True))
        ids = np.fromiter(map(_STACK_ID, records), dtype=np.int64, count=len(records))
        sizes = np.fromiter(map(_SIZE, records), dtype=np.int64, count=len(records))
        if mark is not None:
            self._marks = [records[i] for i in np.flatnonzero(sizes == mark).tolist()]
        if self._native:
            return self._live_bytes_by_pair(records, ids, sizes)
        if len(ids) and ids.max() >= len(self._number_of_id):
            grown = np.full(max(2 * len(self._number_of_id), ids.max() + 1), -1, dtype=np.int64)
            grown[: len(self._number_of_id)] = self._number_of_id
            self._number_of_id = grown
        numbers = self._number_of_id[ids]
        for i in np.flatnonzero(numbers < 0).tolist():
            number = self._number_of_id[ids[i]]  # another record of this poll numbered it
            if number < 0:
                number = self._number_of_id[ids[i]] = self._new_number(records[i])
            numbers[i] = number
        live = np.zeros(len(self._stacks), dtype=np.int64)
        np.add.at(live, numbers, sizes)
        return live

    def _live_bytes_by_pair(
        self, records: list[AllocationRecord], ids: np.ndarray, sizes: np.ndarray
    ) -> np.ndarray:
        """:meth:`_live_bytes` with native traces: numbered by (stack_id, native_stack_id),
        each distinct pair of the poll looked up once."""
        native = np.fromiter(map(_NATIVE_STACK_ID, records), dtype=np.int64, count=len(records))
        pairs, first, inverse = np.unique(
            (ids << 32) | native, return_index=True, return_inverse=True
        )
        known = self._number_of_pair
        numbers = np.empty(len(pairs), dtype=np.int64)
        for j, (pair, i) in enumerate(zip(pairs.tolist(), first.tolist(), strict=True)):
            number = known.get(pair)
            if number is None:
                number = known[pair] = self._new_number(records[i])
            numbers[j] = number
        live = np.zeros(len(self._stacks), dtype=np.int64)
        np.add.at(live, numbers[inverse.reshape(-1)], sizes)
        return live

    def _new_number(self, record: AllocationRecord) -> int:
        """A number for a new stack, its record kept to resolve it later."""
        number = len(self._stacks)
        self._stacks.append(None)
        self._tails.append(())
        self._unresolved[number] = record
        return number

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

    def _keep_retained(self, t: float, live: np.ndarray) -> None:
        with self._series_lock:
            if len(self._retained) == self._capacity:
                self._retained = self._retained[::2]  # every other: the first stays
            self._retained.append((t, int(live.sum()), live))

    def retained_series(self) -> tuple[list[float], list[int]]:
        """The times and heaps of the polls right after full collections so far: safe
        while it is read."""
        with self._series_lock:
            return [t for t, _, _ in self._retained], [h for _, h, _ in self._retained]

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


def _totals(group_of: np.ndarray, groups: int, chosen: list[np.ndarray | None]) -> np.ndarray:
    """Each group's live bytes at each chosen poll (0 where a poll is ``None``): a
    stack number's bytes go to its group ``group_of[number]``."""
    totals = np.zeros((groups, len(chosen)), dtype=np.int64)
    for column, live in enumerate(chosen):
        if live is not None:
            np.add.at(totals[:, column], group_of[: len(live)], live)
    return totals


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
