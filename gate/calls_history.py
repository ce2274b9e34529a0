"""The histories of function-level memory tests (``memgate_calls``): one JSON file per
test in ``baselines/calls/``, written like the scenarios' histories (locked, atomic)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

from pydantic import TypeAdapter

from gate._files import locked, write_atomic
from gate._json import bad_integer, read_json, validate
from gate.baseline import invalid
from gate.errors import InputError
from gate.summary import DEFAULT_KEEP


@dataclasses.dataclass(frozen=True)
class CallsRun:
    """One recorded measurement of a function-level memory test (``memgate_calls``)."""

    recorded_at: str
    commit: str | None
    env_key: str
    growth_per_call: float
    """Bytes per call over the rounds after the warm-up."""
    low: float
    high: float
    peak: int
    """Highest heap while tracking, bytes."""
    calls_per_round: int
    rounds: int


@dataclasses.dataclass(frozen=True)
class CallsHistory:
    schema_version: int
    test_id: str
    """pytest's node id of the test."""
    runs: tuple[CallsRun, ...]
    """Oldest first."""


CALLS_SCHEMA_VERSION = 1


class CallsStore:
    """Histories of function-level memory tests, one file per test in ``ROOT/calls/``."""

    def __init__(self, root: Path) -> None:
        self.root = root / "calls"

    def path(self, test_id: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id)[-80:].strip("_.")
        digest = hashlib.sha256(test_id.encode()).hexdigest()[:8]
        return self.root / f"{slug}-{digest}.json"

    def load(self, test_id: str) -> CallsHistory | None:
        path = self.path(test_id)
        if not path.exists():
            return None
        data, raw = read_json(path, "baseline", not_json="baseline is not valid JSON")
        try:
            history = validate(TypeAdapter(CallsHistory), data, raw)
        except ValueError as exc:
            raise invalid(path, exc) from None
        problem = bad_integer(history)
        if problem:
            raise InputError(f"{path}: {problem}")
        if history.schema_version != CALLS_SCHEMA_VERSION or history.test_id != test_id:
            raise InputError(f"{path}: not a version 1 history of {test_id}")
        return history

    def record(self, test_id: str, run: CallsRun, *, keep: int = DEFAULT_KEEP) -> CallsHistory:
        path = self.path(test_id)
        with locked(self.root, path.stem):
            old = self.load(test_id) or CallsHistory(CALLS_SCHEMA_VERSION, test_id, ())
            history = dataclasses.replace(old, runs=(*old.runs, run)[-keep:])
            data = TypeAdapter(CallsHistory).dump_json(history, indent=2) + b"\n"
            write_atomic(path, data)
        return history
