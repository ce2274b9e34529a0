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
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from gate.errors import InputError
from gate.model import Frame, MemorySnapshot

DEFAULT_MAX_SNAPSHOTS = 2000


class UnreadableCapture(InputError):
    """The capture file is missing, truncated, empty or not a memray capture."""


@dataclasses.dataclass(frozen=True)
class StackLiveBytes:
    stack: tuple[Frame, ...]
    """Innermost frame first; empty for allocations made with no Python frame."""
    live: tuple[int, ...]
    """Live bytes at each of the requested snapshot indexes."""


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

        self.path = path
        if not path.is_file():
            raise UnreadableCapture(f"{path}: no capture file (the service wrote none)")
        if path.stat().st_size == 0:
            raise UnreadableCapture(f"{path}: capture file is empty (the service was killed?)")
        try:
            self._reader = FileReader(
                path, report_progress=show_progress, max_memory_records=max_snapshots
            )
        except (OSError, RuntimeError, ValueError, OverflowError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnreadableCapture(f"{path}: not a readable memray capture: {reason}") from None

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._reader.close()

    def snapshots(self) -> list[MemorySnapshot]:
        return [
            MemorySnapshot(t=snap.time / 1000.0, rss=snap.rss, heap=snap.heap)
            for snap in self._reader.get_memory_snapshots()
        ]

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        """Live bytes of each Python stack at each snapshot index in ``indexes``.

        Records that differ only by thread or allocator are merged into one stack.
        """
        at = np.asarray(indexes, dtype=np.int64)
        merged: dict[tuple[tuple[str, str, int], ...], np.ndarray] = {}
        try:
            records = self._reader.get_temporal_allocation_records(merge_threads=True)
            for record in records:
                key = tuple(record.stack_trace())
                live = _live_at(record.intervals, at)
                if key in merged:
                    merged[key] += live
                else:
                    merged[key] = live
        except (OSError, RuntimeError, ValueError, NotImplementedError) as exc:
            raise UnreadableCapture(f"{self.path}: cannot read allocations: {exc}") from None
        frames: dict[tuple[str, str, int], Frame] = {}  # one Frame per place, shared
        for key, live in merged.items():
            stack = []
            for place in key:
                frame = frames.get(place)
                if frame is None:
                    frame = frames[place] = Frame(function=place[0], file=place[1], line=place[2])
                stack.append(frame)
            yield StackLiveBytes(stack=tuple(stack), live=tuple(live.tolist()))


def _live_at(intervals: Sequence[object], at: np.ndarray) -> np.ndarray:
    """Bytes alive at each snapshot index in ``at``.

    An interval allocated before snapshot ``g`` and freed before snapshot ``d`` is alive
    at snapshots ``g .. d-1`` (``d`` is ``None`` when it was never freed).
    """
    never = np.iinfo(np.int64).max
    rows = [
        (
            i.allocated_before_snapshot,  # type: ignore[attr-defined]
            never if i.deallocated_before_snapshot is None else i.deallocated_before_snapshot,  # type: ignore[attr-defined]
            i.n_bytes,  # type: ignore[attr-defined]
        )
        for i in intervals
    ]
    table = np.array(rows, dtype=np.int64).reshape(len(rows), 3)
    return live_bytes_at(table[:, 0], table[:, 1], table[:, 2], at)


def live_bytes_at(
    starts: np.ndarray, ends: np.ndarray, sizes: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """Sum of ``sizes`` whose ``[start, end)`` contains each value of ``at``."""
    order = np.argsort(starts, kind="stable")
    added = np.concatenate(([0], np.cumsum(sizes[order])))
    allocated = added[np.searchsorted(starts[order], at, side="right")]
    order = np.argsort(ends, kind="stable")
    removed = np.concatenate(([0], np.cumsum(sizes[order])))
    freed = removed[np.searchsorted(ends[order], at, side="right")]
    return np.asarray(allocated - freed, dtype=np.int64)


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
