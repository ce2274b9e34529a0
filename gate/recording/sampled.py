"""The ``sampled`` recorder: the ``counters`` recorder's exact heap, and sites estimated
from samples. memgate's agent starts the heap sampler (the ``memgate-sampler``
extension, ``sampler/``) in each process: one allocation of the Python allocators in
``sample_bytes`` bytes, on average, is sampled with its Python stack, and each stack's
live bytes are estimated without bias from its live samples. The agent writes them every
0.5 s and right after each of its full collections (stamped with the collection's time);
a point of the curve takes the samples' last line at or before it.

Nothing is traced: the service runs near its own speed, the heap is known exactly, and
the lines that grow are named by their estimates. A leak in native code (``malloc``
outside the Python allocators) is in the heap and RSS, but no Python site estimates it."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from gate.model import Frame, MemorySnapshot
from gate.recording import Recorded
from gate.recording.capture_file import StackLiveBytes
from gate.recording.counters import CountersRecorder
from gate.service.agent_files import read_samples, samples_files

MATCH_S = 0.001
"""A samples' line this much after a point still is that point's: the agent stamps the
line it writes right after a full collection with the collection's own time."""


class SampledRecording:
    """One process's counters and samples: a :class:`gate.recording.Recording`."""

    def __init__(
        self,
        snapshots: list[MemorySnapshot],
        samples: Path | None,
        interned: dict[tuple[str, str, int], Frame] | None = None,
    ) -> None:
        self._snapshots = snapshots
        self._samples = samples
        self._interned = {} if interned is None else interned
        """The run's frames, shared by its processes' recordings (one object a line)."""

    def snapshots(self) -> list[MemorySnapshot]:
        return self._snapshots

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        stacks, lines = read_samples(self._samples, self._interned)
        times = [t for t, _ in lines]
        at = [
            bisect.bisect_right(times, self._snapshots[i].t + MATCH_S) - 1 if i >= 0 else -1
            for i in indexes
        ]
        chosen = [(k, lines[a][1]) for k, a in enumerate(at) if a >= 0]
        if not chosen:
            return
        # Every stack live at some chosen line, a row each; a column per point.
        ids = np.unique(np.concatenate([live[:, 0] for _, live in chosen]))
        table = np.zeros((len(ids), len(indexes)), dtype=np.int64)
        for k, live in chosen:
            table[np.searchsorted(ids, live[:, 0]), k] = live[:, 1]
        # Stacks told apart by their instructions may share their lines: one site. (The
        # run's frames are interned: the same frames are the same objects, whose ids
        # hash far faster than the frames do.)
        rows: dict[tuple[int, ...], tuple[tuple[Frame, ...], list[int]]] = {}
        for row, stack in enumerate(ids.tolist()):
            frames = stacks.get(stack, ())
            rows.setdefault(tuple(map(id, frames)), (frames, []))[1].append(row)
        for frames, same in rows.values():
            live = table[same[0]] if len(same) == 1 else table[same].sum(axis=0)
            yield StackLiveBytes(frames, tuple(live.tolist()))


class SampledRecorder(CountersRecorder):
    """The agent's heap counters and samples, one file of each per process in ``folder``."""

    mode = "sampled"
    env_suffix = "sampled"

    def __init__(self, folder: Path, who: str, sample_bytes: int) -> None:
        super().__init__(folder, who)
        self.sample_bytes = sample_bytes

    def agent_settings(self) -> dict[str, object]:
        return {"capture": "sampled", "rate": self.sample_bytes, "port": None, "file": None}

    def clear(self) -> None:
        super().clear()
        for path in samples_files(self.folder).values():
            path.unlink(missing_ok=True)

    def open(self, main_pid: int, opened: contextlib.ExitStack, progress: bool) -> list[Recorded]:
        samples = samples_files(self.folder)
        interned: dict[tuple[str, str, int], Frame] = {}
        return [
            Recorded(pid, "", SampledRecording(snapshots, samples.get(pid), interned))
            for pid, snapshots in self._read(main_pid)
            if snapshots or pid == main_pid
        ]

    def describe(self) -> str:
        return f"the heap counters and samples of the {self.who}"
