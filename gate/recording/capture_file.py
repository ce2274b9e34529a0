"""Read memray capture files: the only module that imports memray's reader.

Two passes over the file, both inside memray's C++ reader: opening it collects the
memory snapshots (time, RSS, heap); :meth:`Capture.live_bytes_by_stack` then asks for
the temporal allocation records (per stack, the snapshot intervals during which its
allocations stayed alive) and turns them into live bytes at chosen snapshots. memray
keeps at most ``max_snapshots`` snapshots (it strides longer captures), which bounds the
memory both passes need whatever the capture's length.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from gate.errors import InputError
from gate.model import Frame, MemorySnapshot

DEFAULT_MAX_SNAPSHOTS = 2000

Place = tuple[str, str, int]
"""A frame as memray gives it: function, file, line."""


def quiet_memray() -> None:
    """Keep memray's own log lines (``Memray ERROR: Invalid record type``, printed to
    the terminal as its reader meets a damaged record) out of memgate's output: memgate
    says in one line what it could not read. Its critical lines, before an abort, stay."""
    import logging

    from memray import set_log_level  # type: ignore[attr-defined]  # public, untyped

    set_log_level(logging.CRITICAL)


class UnreadableCapture(InputError):
    """The capture file is missing, truncated, empty or not a memray capture."""


@dataclasses.dataclass(frozen=True)
class StackLiveBytes:
    stack: tuple[Frame, ...]
    """Innermost frame first; empty for allocations made with no Python frame."""
    live: tuple[int, ...]
    """Live bytes at each of the requested snapshot indexes."""
    native: tuple[Frame, ...] = ()
    """Recorded with native traces: the native frames the innermost Python frame called,
    innermost first (of the native paths under this Python stack, the one whose live
    bytes grew most from the first requested index to the last)."""


class Capture:
    """An open memray capture file."""

    def __init__(
        self,
        path: Path,
        *,
        max_snapshots: int = DEFAULT_MAX_SNAPSHOTS,
        show_progress: bool = False,
    ) -> None:
        from memray import FileReader

        quiet_memray()
        self.path = path
        if not path.is_file():
            raise UnreadableCapture(f"{path}: no capture file (the service wrote none)")
        if path.stat().st_size == 0:
            raise UnreadableCapture(f"{path}: capture file is empty (the service was killed?)")
        try:
            self._reader = FileReader(
                path, report_progress=show_progress, max_memory_records=max_snapshots
            )
            # memray builds its metadata from the header at each look: a damaged header
            # (an allocator id out of range, a KeyError) fails here, not mid-reading.
            self._native = bool(self._reader.metadata.has_native_traces)
        # MemoryError: a damaged length has memray 1.13 ask for more than there is.
        except (OSError, RuntimeError, ValueError, OverflowError, LookupError, MemoryError) as exc:
            raise UnreadableCapture(
                f"{path}: not a readable memray capture: {memray_reason(exc)}"
            ) from None

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._reader.close()

    def snapshots(self) -> list[MemorySnapshot]:
        try:
            return [
                MemorySnapshot(t=snap.time / 1000.0, rss=snap.rss, heap=snap.heap)
                for snap in self._reader.get_memory_snapshots()
            ]
        except (OSError, RuntimeError, ValueError, OverflowError, LookupError, MemoryError) as exc:
            raise UnreadableCapture(
                f"{self.path}: cannot read memory snapshots: {memray_reason(exc)}"
            ) from None

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        """Live bytes of each Python stack at each snapshot index in ``indexes``.

        Records that differ only by thread or allocator are merged into one stack. The
        records' intervals are gathered into flat arrays as memray yields them; the
        sums are then made with numpy, a block of stacks at a time. Recorded with native
        traces, each native path under a Python stack is summed apart first, to name the
        one that grew (:func:`by_python_stack`).
        """
        never = np.iinfo(np.int64).max
        native = self._native
        stacks: dict[tuple[tuple[Place, ...], tuple[Place, ...]], int] = {}
        groups: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        sizes: list[int] = []
        try:
            records = self._reader.get_temporal_allocation_records(merge_threads=True)
            for record in records:
                python = tuple(record.stack_trace())
                tail = native_tail(record.hybrid_stack_trace(), python) if native else ()
                group = stacks.setdefault((python, tail), len(stacks))
                for interval in record.intervals:
                    groups.append(group)
                    starts.append(interval.allocated_before_snapshot)
                    end = interval.deallocated_before_snapshot
                    ends.append(never if end is None else end)
                    sizes.append(interval.n_bytes)
            # A damaged size or snapshot number can be past int64: OverflowError here.
            group_of, start_at, end_at, size_of = (
                np.asarray(column, dtype=np.int64) for column in (groups, starts, ends, sizes)
            )
        # LookupError: a damaged record sends memray 1.13's C++ reader out of its maps.
        except (
            OSError,
            RuntimeError,
            ValueError,
            NotImplementedError,
            OverflowError,
            LookupError,
            MemoryError,
        ) as exc:
            raise UnreadableCapture(
                f"{self.path}: cannot read allocations: {memray_reason(exc)}"
            ) from None
        chosen = np.asarray(indexes, dtype=np.int64)
        live = live_bytes_by_group(group_of, start_at, end_at, size_of, chosen, len(stacks))
        frames: dict[Place, Frame] = {}  # one Frame per place, shared
        if not native:
            for (python, _), row in zip(stacks, live, strict=True):
                yield StackLiveBytes(stack=as_frames(python, frames), live=tuple(row.tolist()))
            return
        yield from by_python_stack(
            (as_frames(python, frames), as_frames(tail, frames), row)
            for (python, tail), row in zip(stacks, live, strict=True)
        )


def as_frames(places: Sequence[Place], frames: dict[Place, Frame]) -> tuple[Frame, ...]:
    """memray's places as frames, one :class:`Frame` per place in ``frames``."""
    stack = []
    for place in places:
        frame = frames.get(place)
        if frame is None:
            frame = frames[place] = Frame(function=place[0], file=place[1], line=place[2])
        stack.append(frame)
    return tuple(stack)


def native_tail(hybrid: Sequence[Place], python: Sequence[Place]) -> tuple[Place, ...]:
    """The native frames of memray's hybrid stack inside its innermost Python frame
    (all of them when there is no Python frame; none if that frame is not in it)."""
    if not python:
        return tuple(hybrid)
    innermost = python[0]
    for i, place in enumerate(hybrid):
        if place == innermost:
            return tuple(hybrid[:i])
    return ()


def by_python_stack(
    variants: Iterable[tuple[tuple[Frame, ...], tuple[Frame, ...], np.ndarray]],
) -> Iterator[StackLiveBytes]:
    """``(Python stack, native frames, live bytes)`` summed by Python stack, in the order
    first seen, each keeping the native frames of its variant that grew most (the first
    value to the last; the most at the last between equals)."""
    merged: dict[tuple[Frame, ...], tuple[np.ndarray, tuple[Frame, ...], tuple[int, int]]] = {}
    for python, tail, row in variants:
        growth = (int(row[-1] - row[0]), int(row[-1])) if len(row) else (0, 0)
        seen = merged.get(python)
        if seen is None:
            merged[python] = (row, tail, growth)
            continue
        total, kept, most = seen
        if growth > most:
            kept, most = tail, growth
        merged[python] = (total + row, kept, most)
    for python, (total, tail, _) in merged.items():
        yield StackLiveBytes(stack=python, live=tuple(total.tolist()), native=tail)


def memray_reason(exc: BaseException) -> str:
    """The first line of what memray said, for a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


BLOCK = 1024
"""Stacks summed at a time: bounds the working array to BLOCK x len(indexes) integers."""


def live_bytes_by_group(
    groups: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    sizes: np.ndarray,
    at: np.ndarray,
    n_groups: int,
) -> Iterator[np.ndarray]:
    """For each group ``0 .. n_groups - 1`` in order, the sum of the ``sizes`` of its
    intervals ``[start, end)`` that contain each value of ``at``.

    An interval allocated before snapshot ``g`` and freed before snapshot ``d`` is alive
    at snapshots ``g .. d-1``. Each interval adds its size to a difference array at the
    first value of ``at`` it covers and takes it away at the first it does not; a
    cumulative sum along ``at`` gives the live bytes.
    """
    order = np.argsort(at, kind="stable")
    ordered = at[order]
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    first = np.searchsorted(ordered, starts, side="left")
    stop = np.searchsorted(ordered, ends, side="left")
    by_group = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[by_group], np.arange(0, n_groups + BLOCK, BLOCK))
    for block, low in enumerate(range(0, n_groups, BLOCK)):
        rows = min(BLOCK, n_groups - low)
        picked = by_group[bounds[block] : bounds[block + 1]]
        diff = np.zeros((rows, len(at) + 1), dtype=np.int64)
        np.add.at(diff, (groups[picked] - low, first[picked]), sizes[picked])
        np.add.at(diff, (groups[picked] - low, stop[picked]), -sizes[picked])
        yield from np.cumsum(diff, axis=1)[:, :-1][:, back]


@contextlib.contextmanager
def tracking(path: Path, *, interval_ms: int = 1) -> Iterator[None]:
    """Record this process's allocations (Python allocators traced, every object seen)
    into ``path`` while the block runs, with memory snapshots every ``interval_ms``."""
    from memray import FileFormat, Tracker

    path.unlink(missing_ok=True)
    tracker = Tracker(
        path,
        trace_python_allocators=True,
        memory_interval_ms=interval_ms,
        file_format=FileFormat.ALL_ALLOCATIONS,
    )
    try:
        tracker.__enter__()
    except RuntimeError as exc:  # another tracker is active (pytest-memray, say)
        raise InputError(f"cannot track allocations: {exc}") from None
    try:
        yield
    finally:
        tracker.__exit__(None, None, None)
