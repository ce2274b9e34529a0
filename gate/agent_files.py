"""What memgate's agent writes inside the service's output folder, read back: the
garbage collector's running totals (``gc.<pid>.<start ns>.jsonl``) and the censuses of
its objects (``census.LABEL.<pid>.json``). A file damaged or not the agent's is left
out: these tell, they never decide."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic

from gate.agent.memgate_agent import CENSUS_FILE
from gate.analysis.retention import CensusRecord
from gate.model import GcSample


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


def read_censuses(folder: Path, label: str) -> list[CensusRecord]:
    """The agent's censuses labelled ``label`` in ``folder``, one per process that took
    it; a file that is unreadable or not the agent's is left out (a census tells, it
    never decides)."""
    found = []
    for path in sorted(folder.glob(CENSUS_FILE.format(label=label, pid="*"))):
        try:
            raw = _CensusFile.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
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
    return found


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
