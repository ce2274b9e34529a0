"""What memgate's agent writes inside the service's output folder, read back: the
garbage collector's running totals (``gc.<pid>.<start ns>.jsonl``), its full collections
(``full.<pid>.jsonl``), the censuses of its objects (``census.LABEL.<pid>.json``) and,
counting, the heap's counters (``heap.<pid>.<start ns>.jsonl``) and, sampling, the live
bytes by stack the heap sampler holds (``samples.<pid>.<start ns>.jsonl``). A
file damaged or not the agent's is left out: these tell, they never decide."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pydantic

from gate.agent.memgate_agent import CENSUS_FILE, FULL_FILE, HEAP_FILE
from gate.agent.samples import SAMPLES_FILE
from gate.analysis.retention import CensusRecord
from gate.model import Frame, MemorySnapshot
from gate.observed import FullCollection, GcSample


class _GrownContainer(pydantic.BaseModel):
    type: str
    before: int
    after: int
    path: str


class _CensusFile(pydantic.BaseModel):
    """A census as the agent writes it (``census.LABEL.PID.json``)."""

    label: str
    pid: int
    t: float
    objects: int
    seconds: float
    truncated: bool = False
    frozen: int = 0
    types: dict[str, int]
    orphans: dict[str, int]
    grown: list[_GrownContainer] = []


class _CensusError(pydantic.BaseModel):
    """What the agent writes when its census raised."""

    label: str
    error: str


def read_censuses(folder: Path, label: str) -> tuple[list[CensusRecord], dict[int, str]]:
    """The agent's censuses labelled ``label`` in ``folder``, one per process that took
    it, and by pid why the others were left out: the agent's reason when it failed, or
    that the file cannot be read (a census tells, it never decides)."""
    found = []
    failed: dict[int, str] = {}
    for path in sorted(folder.glob(CENSUS_FILE.format(label=label, pid="*"))):
        pid = path.name.split(".")[2]
        if not pid.isdigit():
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            failed[int(pid)] = f"is unreadable: {exc.strerror or exc}"
            continue
        try:
            failed[int(pid)] = f"failed: {_CensusError.model_validate_json(data).error}"
            continue
        except ValueError:
            pass
        try:
            raw = _CensusFile.model_validate_json(data)
        except ValueError:
            failed[int(pid)] = "is unreadable"
            continue
        if raw.label != label:
            continue
        found.append(
            CensusRecord(
                pid=raw.pid,
                label=raw.label,
                t=raw.t,
                objects=raw.objects,
                seconds=raw.seconds,
                truncated=raw.truncated,
                types=raw.types,
                orphans=raw.orphans,
                grown=tuple((g.type, g.before, g.after, g.path) for g in raw.grown),
                frozen=raw.frozen,
            )
        )
    return found, failed


def read_gc_samples(prefix: Path) -> list[list[GcSample]]:
    """The probe's samples, one list per process (``PREFIX.<pid>.<start ns>.jsonl``); a
    line cut short by a kill, or anything not the probe's, is skipped."""
    out = []
    for path in sorted(prefix.parent.glob(prefix.name + ".*.*.jsonl")):
        pid, started = path.name.split(".")[-3:-1]
        if not (pid.isdigit() and started.isdigit()):
            continue
        samples = []
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                raw = json.loads(line)
                counts = [int(n) for n in raw["collections"]]
                samples.append(
                    GcSample(float(raw["t"]), sum(counts), counts[2], float(raw["seconds"]))
                )
            except (ValueError, KeyError, TypeError, IndexError):
                continue
        if samples:
            out.append(samples)
    return out


def read_full_collections(folder: Path) -> dict[int, list[FullCollection]]:
    """Each process's full collections, by pid, oldest first; a line cut short by a
    kill, or anything not the agent's, is skipped."""
    found: dict[int, list[FullCollection]] = {}
    for path in sorted(folder.glob(FULL_FILE.format(pid="*"))):
        pid = path.name.split(".")[1]
        if not pid.isdigit():
            continue
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        mine = []
        for line in lines:
            try:
                raw = json.loads(line)
                mine.append(
                    FullCollection(float(raw["t"]), float(raw["pause"]), raw["forced"] is True)
                )
            except (ValueError, KeyError, TypeError):
                continue
        if mine:
            found[int(pid)] = sorted(mine, key=lambda c: c.t)
    return found


def heap_files(folder: Path) -> dict[int, Path]:
    """Each process's file of heap counters, by pid (of a pid used by several processes
    in turn, a recycled worker's, the newest process's)."""
    return _newest_by_pid(folder, HEAP_FILE)


def samples_files(folder: Path) -> dict[int, Path]:
    """Each process's file of the heap sampler's live bytes, by pid (as :func:`heap_files`)."""
    return _newest_by_pid(folder, SAMPLES_FILE)


def _newest_by_pid(folder: Path, pattern: str) -> dict[int, Path]:
    found: dict[int, tuple[int, Path]] = {}
    for path in folder.glob(pattern.format(pid="*", ns="*")):
        parts = path.name.split(".")
        if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()):
            continue
        pid, started = int(parts[1]), int(parts[2])
        if pid not in found or found[pid][0] < started:
            found[pid] = (started, path)
    return {pid: path for pid, (_, path) in found.items()}


def read_heap_counters(heap_file: Path, full_file: Path) -> list[MemorySnapshot]:
    """One process's heap counters, oldest first: every line of its ``heap_file``, and
    each full collection's line of its ``full_file`` that carries them (marked retained:
    read right after the collection). A line cut short, or not the agent's, is skipped."""
    snapshots = [*_counted(heap_file, retained=False), *read_retained_counters(full_file)]
    return sorted(snapshots, key=lambda s: s.t)


def read_retained_counters(full_file: Path) -> list[MemorySnapshot]:
    """The heap counters of one process's full collections alone, oldest first."""
    return _counted(full_file, retained=True)


def _counted(path: Path, retained: bool) -> list[MemorySnapshot]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            raw = json.loads(line)
            if "heap" not in raw:
                continue
            out.append(MemorySnapshot(float(raw["t"]), int(raw["rss"]), int(raw["heap"]), retained))
        except (ValueError, KeyError, TypeError):
            continue
    return out


Sampled = tuple[Mapping[int, tuple[Frame, ...]], list[tuple[float, np.ndarray]]]
"""The sampler's stacks by id (innermost frame first), and each line's time and live
bytes by stack id (an array of ``[stack id, bytes]`` rows), oldest first."""


_LIVE_HEAD = re.compile(rb'\{"t": (-?[0-9.e+-]+), "live": \[')
_ROW = rb"\[[0-9]{1,18}, -?[0-9]{1,18}\]"
_LIVE_ROWS = re.compile(rb"(?:%s(?:, %s)*)?" % (_ROW, _ROW))
"""A line of the live set exactly as the extension writes it, whose rows are then read
with numpy's text parser (0.4 ms for 3,000 stacks, where ``json`` and an array of its
lists take 2.4 ms)."""


def _live_line(line: bytes) -> tuple[float, np.ndarray] | None:
    """The time and live set of a line of the extension's, if it is one; ``None``
    otherwise (another kind of line, or not quite this form: read as JSON then)."""
    head = _LIVE_HEAD.match(line)
    if head is None or not line.endswith(b"]}"):
        return None
    body = line[head.end() : -2]
    if _LIVE_ROWS.fullmatch(body) is None:
        return None
    try:
        t = float(head.group(1))
    except ValueError:
        return None
    if not body:
        return t, np.empty((0, 2), np.int64)
    live = np.fromstring(body.translate(None, b"[],").decode(), dtype=np.int64, sep=" ")
    return t, live.reshape(-1, 2)


_NUMBER = rb"(?:0|[1-9][0-9]{0,9})"  # as JSON writes one: no leading zero
_STACK_ITEM = re.compile(rb'"(%s)": \[((?:%s(?:, %s)*)?)\]' % (_NUMBER, _NUMBER, _NUMBER))
"""A stack in a line of new stacks as the extension writes them: each stack's frame
ids are kept as their text, read when the stack is first asked for (``json`` took a
fifth of reading a Flask app's samples, most of them stacks no point holds)."""


def _stacks_line(line: bytes, into: dict[int, object]) -> bool:
    """The stacks of a line of the extension's into ``into`` (id: their frame ids'
    text); ``False`` for another kind of line, or not quite this form (JSON then)."""
    if not (line.startswith(b'{"stacks": {') and line.endswith(b"}}")):
        return False
    body = line[12:-2]
    # Nothing but its stacks, ", " between them: the line is made again from them.
    found = _STACK_ITEM.findall(body)
    if body != b", ".join(b'"%s": [%s]' % pair for pair in found):
        return False
    into.update({int(key): ids for key, ids in found})
    return True


class _Stacks(Mapping[int, tuple[Frame, ...]]):
    """The stacks of a samples file by id, each made of its frames when first asked for:
    a framework app's file names 15,000 stacks of 50 frames, and a run needs the few
    thousand live at its points. A stack naming a frame a damaged line lost is left out
    alone."""

    def __init__(self, frames: dict[int, Frame]) -> None:
        self.ids: dict[int, object] = {}
        self._frames = frames
        self._made: dict[int, tuple[Frame, ...] | None] = {}

    def _make(self, key: int) -> tuple[Frame, ...] | None:
        if key not in self._made:
            made = None
            with contextlib.suppress(KeyError, TypeError, ValueError):
                ids = self.ids[key]
                if isinstance(ids, bytes):  # as the extension wrote them (_stacks_line)
                    ids = map(int, ids.split(b", ")) if ids else ()
                made = tuple(map(self._frames.__getitem__, ids))  # type: ignore[call-overload]
            self._made[key] = made
        return self._made[key]

    def __getitem__(self, key: int) -> tuple[Frame, ...]:
        made = self._make(key)
        if made is None:
            raise KeyError(key)
        return made

    def __iter__(self) -> Iterator[int]:
        return (key for key in list(self.ids) if self._make(key) is not None)

    def __len__(self) -> int:  # makes every stack (as bool() does): .get is what runs use
        return sum(1 for _ in self)


def read_samples(
    path: Path | None, interned: dict[tuple[str, str, int], Frame] | None = None
) -> Sampled:
    """One process's samples file (:data:`Sampled`); nothing for no file. A line cut short,
    or not the agent's, is skipped. A line of the live set is read into an array whole
    (a framework app's lines hold thousands of stacks each: a dict of them, line by line,
    took seconds after the load)."""
    return SamplesReader(path, interned).sampled()


class SamplesReader:
    """A samples file read as it grows (:meth:`read_more`, while the load runs: a Flask
    app's three files came to 20 MB, whose reading after the load took a third of a
    second's CPU beside the censuses) and to its end (:meth:`sampled`)."""

    def __init__(
        self, path: Path | None, interned: dict[tuple[str, str, int], Frame] | None = None
    ) -> None:
        self.path = path
        self._frames: dict[int, Frame] = {}
        self._stacks = _Stacks(self._frames)
        # The same line in several processes' files one object (``interned``, the run's):
        # the sums over processes then compare their stacks at once.
        self._interned = {} if interned is None else interned
        self._lines: list[tuple[float, np.ndarray]] = []
        self._offset = 0
        self._whole = False

    def read_more(self, whole: bool = False) -> None:
        """Read the lines written since the last call that a newline ends, and
        (``whole``) the line after them, which a cut is skipped as (it is read again,
        whole, if it is ended later)."""
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as source:
                source.seek(self._offset)
                chunk = source.read()
        except OSError:
            return
        ended = chunk.rfind(b"\n") + 1
        self._offset += ended
        for line in chunk[:ended].splitlines():
            self._read_line(line)
        if whole and chunk[ended:]:
            self._read_line(chunk[ended:])

    def make_stacks(self) -> None:
        """Make the stacks of the newest line of the live set now (while the load runs:
        those live at its end are mostly live already; a Flask app's 10,000 took 0.15 s
        to make after it, under cProfile)."""
        if self._lines:
            for key in self._lines[-1][1][:, 0].tolist():
                self._stacks.get(key)

    def sampled(self) -> Sampled:
        """The whole file's :data:`Sampled`, its lines in time order: read to its end
        once, at the first call."""
        if not self._whole:
            self._whole = True
            self.read_more(whole=True)
            self._lines.sort(key=lambda line: line[0])
        return self._stacks, self._lines

    def _read_line(self, line: bytes) -> None:
        quick = _live_line(line)
        if quick is not None:
            self._lines.append(quick)
            return
        if _stacks_line(line, self._stacks.ids):
            return
        frames, interned = self._frames, self._interned
        try:
            raw = json.loads(line)
            if "frames" in raw:
                for key, (function, file, number) in raw["frames"].items():
                    named = (str(function), str(file), int(number))
                    frames[int(key)] = interned.get(named) or interned.setdefault(
                        named, Frame(*named)
                    )
            elif "stacks" in raw:
                for key, ids in raw["stacks"].items():
                    with contextlib.suppress(ValueError, TypeError):
                        self._stacks.ids[int(key)] = ids
            elif "live" in raw:
                if not all(type(v) is int for row in raw["live"] for v in row):
                    return  # numbers only (numpy would read "4" as 4)
                live = np.asarray(raw["live"], dtype=np.int64)
                if live.size == 0:
                    live = live.reshape(0, 2)
                if live.ndim != 2 or live.shape[1] != 2:
                    return
                self._lines.append((float(raw["t"]), live))
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
            return
