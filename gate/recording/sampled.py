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
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from gate.model import Frame, MemorySnapshot
from gate.recording import Recorded
from gate.recording.capture_file import StackLiveBytes
from gate.recording.counters import CountersRecorder
from gate.service.agent_files import SamplesReader, samples_files

READ_AHEAD_S = 1.0
"""How often, while the load runs, the samples written since are read."""
READ_AHEAD_NICE = 10
"""How much nicer the reading thread is than memgate (Linux sets it per thread): it
reads with what the service and the load leave of the CPU (a Django app's 12 MB of
samples took 0.33 s of it in a 10 s load)."""
MATCH_S = 0.001
"""A samples' line this much after a point still is that point's: the agent stamps the
line it writes right after a full collection with the collection's own time."""


class SampledRecording:
    """One process's counters and samples: a :class:`gate.recording.Recording`."""

    def __init__(self, snapshots: list[MemorySnapshot], samples: SamplesReader) -> None:
        self._snapshots = snapshots
        self._samples = samples

    def snapshots(self) -> list[MemorySnapshot]:
        return self._snapshots

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        stacks, lines = self._samples.sampled()
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

    def __init__(self, folder: Path, who: str, census: bool, sample_bytes: int) -> None:
        super().__init__(folder, who, census)
        self.sample_bytes = sample_bytes
        self._readers: dict[Path, SamplesReader] = {}
        self._interned: dict[tuple[str, str, int], Frame] = {}
        """The run's frames, shared by its processes' recordings (one object a line)."""
        self._reading: threading.Thread | None = None
        self._read_all = threading.Event()

    def agent_settings(self) -> dict[str, object]:
        return {"capture": "sampled", "rate": self.sample_bytes, "port": None, "file": None}

    def clear(self) -> None:
        super().clear()
        for path in samples_files(self.folder).values():
            path.unlink(missing_ok=True)

    def connect(self, pid: int, alive: Callable[[], bool]) -> None:
        super().connect(pid, alive)
        self._readers, self._interned, self._read_all = {}, {}, threading.Event()
        self._reading = threading.Thread(
            target=self._read_ahead, args=(alive,), name="memgate-samples", daemon=True
        )
        self._reading.start()

    def _read_ahead(self, alive: Callable[[], bool]) -> None:
        """While the load runs (until :meth:`stop`, or the service's end): read what its
        processes' samples files have had written since the last look, and make the
        stacks live now."""
        with contextlib.suppress(OSError, AttributeError):  # not Linux: as it is
            me = threading.get_native_id()
            nice = os.getpriority(os.PRIO_PROCESS, me) + READ_AHEAD_NICE
            os.setpriority(os.PRIO_PROCESS, me, min(nice, 19))
        while not self._read_all.wait(READ_AHEAD_S) and alive():
            for path in samples_files(self.folder).values():
                reader = self._reader(path)
                reader.read_more()
                reader.make_stacks()

    def stop(self) -> None:
        """The load ended: no more reading ahead (what is left is read once the census
        is done, :meth:`open`)."""
        self._read_all.set()
        super().stop()

    def _reader(self, path: Path) -> SamplesReader:
        reader = self._readers.get(path)
        if reader is None:
            reader = self._readers[path] = SamplesReader(path, self._interned)
        return reader

    def open(self, main_pid: int, opened: contextlib.ExitStack, progress: bool) -> list[Recorded]:
        self._read_all.set()
        if self._reading is not None:
            self._reading.join()
        samples = samples_files(self.folder)
        return [
            Recorded(
                pid,
                "",
                SampledRecording(
                    snapshots,
                    self._reader(samples[pid]) if pid in samples else SamplesReader(None),
                ),
            )
            for pid, snapshots in self._read(main_pid)
            if snapshots or pid == main_pid
        ]

    def describe(self) -> str:
        return f"the heap counters and samples of the {self.who}"
