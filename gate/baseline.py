"""The baseline store: the accepted history of each scenario, in ``baselines/``.

One JSON file per scenario, ``NAME.json``, reviewable in a pull request: the last
``keep`` recorded runs (oldest first), each a :class:`RunSummary` with its provenance,
and the id of the **reference** run, the one a release manager last accepted (checks
compare with the runs from the reference on). Beside it, ``NAME.audit.jsonl`` keeps
one line per accepted regression: when, who, which run, and why.

Writes take an exclusive lock (``.NAME.lock``) for the read-modify-write, and replace
the file atomically (temporary file, fsync, rename): a concurrent or crashed writer
never leaves half a file, and a file that does not validate is reported (exit 2) and
never written over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import json
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gate._files import locked, read_input, write_atomic
from gate._json import bad_integer, first_error, read_json, validate
from gate.errors import InputError
from gate.model import RunResult, scenario_key
from gate.scenario import NAME_PATTERN, SERVICE_NAME_PATTERN
from gate.summary import (
    DEFAULT_KEEP,
    SCHEMA_VERSION,
    AuditEntry,
    History,
    RunSummary,
    summarize,
)


@functools.cache
def _history_adapter() -> TypeAdapter[History]:
    return TypeAdapter(History)


class BaselineStore:
    """The histories under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, scenario: str) -> Path:
        """``ROOT/NAME.json``, or ``ROOT/NAME/SERVICE.json`` for one of a scenario's
        several services (``scenario`` is a result's :attr:`~gate.model.ScenarioRef.key`)."""
        if not re.fullmatch(rf"{NAME_PATTERN[1:-1]}(/{NAME_PATTERN[1:-1]})?", scenario):
            raise InputError(f"{scenario!r} is not a scenario name (or NAME/SERVICE)")
        if self.root.exists() and not self.root.is_dir():  # else read as "no history yet"
            raise InputError(f"{self.root}: not a folder (histories are kept in a folder)")
        return self.root / f"{scenario}.json"

    def services_of(self, scenario: str) -> list[str]:
        """``NAME/SERVICE`` of each history kept for the services of scenario NAME."""
        folder = self.path(scenario).with_suffix("")
        found = folder.glob("*.json") if folder.is_dir() else []
        names = [path.stem for path in found]
        return sorted(
            scenario_key(scenario, n) for n in names if re.fullmatch(SERVICE_NAME_PATTERN, n)
        )

    def audit_path(self, scenario: str) -> Path:
        return self.path(scenario).with_suffix(".audit.jsonl")

    def load(self, scenario: str) -> History | None:
        """The scenario's history, ``None`` if it has none; :class:`InputError` (one line
        naming the file) if the file is not a valid history."""
        path = self.path(scenario)
        if not path.exists():
            return None
        data, raw = read_json(path, "baseline", not_json="baseline is not valid JSON")
        history = _parse(data, raw, path)
        if history.scenario != scenario:
            raise InputError(f"{path}: holds scenario {history.scenario!r}, not {scenario!r}")
        accepted = {e.run_id for e in self.audit(scenario) if e.action == "accept"}
        if history.reference is not None and history.reference not in accepted:
            # Set by hand, it would move the start of what every check compares with.
            raise InputError(
                f"{path}: reference {history.reference!r} was never accepted (no accept entry"
                f" in {self.audit_path(scenario).name}): only memgate baseline accept --reason"
                " sets it"
            )
        return history

    def record(self, result: RunResult, *, keep: int = DEFAULT_KEEP) -> History:
        """Append ``result`` to its scenario's history, keeping the last ``keep`` runs
        (the reference is always kept)."""
        summary = summarize(result)
        with self._locked(result.scenario.key):
            history = self.load(result.scenario.key) or History(
                SCHEMA_VERSION, result.scenario.key, ()
            )
            updated = _append(history, summary, keep)
            self._write(updated)
        return updated

    def accept(
        self, result: RunResult, *, reason: str, who: str, keep: int = DEFAULT_KEEP
    ) -> History:
        """Record ``result`` and make it the reference, with an audit entry."""
        reason = " ".join(reason.split())
        if not reason:
            raise InputError("baseline accept: --reason must say why the regression is accepted")
        summary = summarize(result)
        name = result.scenario.key
        with self._locked(name):
            history = self.load(name) or History(SCHEMA_VERSION, name, ())
            entries = self.audit(name)
            updated = dataclasses.replace(_append(history, summary, keep), reference=summary.run_id)
            entry = AuditEntry(
                at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                who=who,
                action="accept",
                run_id=summary.run_id,
                commit=result.provenance.commit,
                reason=reason,
            )
            lines = [json.dumps(dataclasses.asdict(e)) for e in (*entries, entry)]
            before = self.path(name).read_bytes() if self.path(name).exists() else None
            self._write(updated)
            try:
                write_atomic(self.audit_path(name), ("\n".join(lines) + "\n").encode())
            except BaseException:
                # No accept without its audit entry: put the history back as it was.
                if before is None:
                    self.path(name).unlink(missing_ok=True)
                else:
                    write_atomic(self.path(name), before)
                raise
        return updated

    def audit(self, scenario: str) -> list[AuditEntry]:
        path = self.audit_path(scenario)
        if not path.exists():
            return []
        entries = []
        for number, line in enumerate(read_input(path, "audit log").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append(TypeAdapter(AuditEntry).validate_json(line))
            except ValidationError:
                raise InputError(f"{path}:{number}: not an audit entry") from None
        return entries

    def _write(self, history: History) -> None:
        data = _history_adapter().dump_json(history, indent=2) + b"\n"
        write_atomic(self.path(history.scenario), data)

    def _locked(self, scenario: str) -> contextlib.AbstractContextManager[None]:
        path = self.path(scenario)
        return locked(path.parent, path.name.removesuffix(".json"))


def _append(history: History, summary: RunSummary, keep: int) -> History:
    if keep < 2:
        raise InputError(f"keep must be at least 2 runs, not {keep}")
    if any(run.run_id == summary.run_id for run in history.runs):
        return history
    runs = (*history.runs, summary)
    if len(runs) > keep:
        newest = runs[len(runs) - keep :]
        if history.reference and history.reference not in {r.run_id for r in newest}:
            reference = next(r for r in runs if r.run_id == history.reference)
            newest = (reference, *runs[len(runs) - keep + 1 :])
        runs = newest
    return dataclasses.replace(history, runs=runs)


def _parse(data: Any, raw: bytes, path: Path) -> History:
    """The history in ``data``, parsed from ``raw``, validated."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{path}: not a memgate baseline (no integer schema_version)")
    if not 1 <= version <= SCHEMA_VERSION:
        raise InputError(
            f"{path}: baseline schema_version {version} is not one this memgate reads"
            f" (1 to {SCHEMA_VERSION})"
        )
    try:
        history = validate(_history_adapter(), data, raw)
    except ValueError as exc:
        raise invalid(path, exc) from None
    if version == 1:
        # Schema 2 added each run's thinned curve; schema 1 runs have none to draw.
        history = dataclasses.replace(history, schema_version=2)
    problem = bad_integer(history) or _inconsistency(history)
    if problem:
        raise InputError(f"{path}: {problem}")
    return history


def _inconsistency(history: History) -> str | None:
    """What makes a well-typed history unusable, if anything."""
    ids = [run.run_id for run in history.runs]
    for number, run_id in enumerate(ids):
        if run_id in ids[:number]:
            return f"runs.{number}.run_id: {run_id!r} is recorded twice"
    for number, run in enumerate(history.runs):
        try:
            datetime.datetime.fromisoformat(run.recorded_at)
        except ValueError:
            return f"runs.{number}.recorded_at: {run.recorded_at!r} is not an ISO 8601 time"
        for name in ("heap", "rss"):
            p_value = getattr(run, name).p_value
            if not 0 <= p_value <= 1:
                return f"runs.{number}.{name}.p_value: {p_value!r} is not a probability"
    if history.reference is not None and history.reference not in ids:
        return f"reference: {history.reference!r} is not a run of the history"
    return None


def invalid(path: Path, exc: ValueError) -> InputError:
    """One line naming the file, the first bad field and what is wrong with it."""
    return InputError(f"{path}: {first_error(exc)}")
