"""Several checks' ``report.json`` files (a CI matrix) -> one summary and one verdict.

The merged verdict is the worst of the scenarios' (``error`` > ``fail`` > ``flag`` >
``pass``); ``error`` when an input could not be merged, or when there was nothing to
merge: a merge that saw no report is never a pass. Two reports of the same scenario in
the same environment are an error (one of them would otherwise hide the other's
verdict); both are kept in the summary.

:func:`merge` and :func:`parse_report` are pure; :func:`find_reports` and
:func:`read_report` are the file edge; :func:`collect` wires them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import TypeAdapter

from gate._json import bad_integer, first_error, one_of, read_json, validate
from gate.errors import InputError
from gate.layout import COUNTED, FAILURE, REPORT_JSON, REPORT_VERSION, RUN_FILES, is_set_aside
from gate.model import scenario_key
from gate.outcome import WORST_FIRST, Outcome
from gate.verdict import Finding, worst_finding

"""The ``report_version`` read here (``gate.report.json`` writes it)."""


@dataclasses.dataclass(frozen=True)
class ScenarioReport:
    """One scenario's ``report.json``: what the merged summary shows of it."""

    source: str
    """The file, as given or as found in a folder."""
    scenario: str
    environment: str
    """The run's environment key (runs are compared only within one)."""
    verdict: Outcome
    """Pass, flag or fail."""
    findings: tuple[Finding, ...]
    shape: str
    compared_runs: int
    commit: str | None = None
    branch: str | None = None
    result: str | None = None
    """Where the run's ``result.json`` was, on the machine that ran it."""

    @property
    def worst(self) -> Finding | None:
        return worst_finding(self.findings)


@dataclasses.dataclass(frozen=True)
class BadInput:
    """An input that could not be merged, and why (one line)."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


class ReportError(InputError):
    """An input that cannot be merged; ``str()`` is the one line naming it."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.bad = BadInput(source, reason)


@dataclasses.dataclass(frozen=True)
class Merged:
    reports: tuple[ScenarioReport, ...]
    """Worst verdict first, then by scenario and environment."""
    errors: tuple[BadInput, ...] = ()

    @property
    def verdict(self) -> Outcome:
        if self.errors or not self.reports:
            return Outcome.ERROR
        return Outcome.worst(r.verdict for r in self.reports)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.reports if r.verdict is outcome)


def merge(reports: Iterable[ScenarioReport], errors: Iterable[BadInput] = ()) -> Merged:
    """The reports, worst first, and an error for every scenario and environment
    reported more than once."""
    found = list(errors)
    first: dict[tuple[str, str], ScenarioReport] = {}
    kept = list(reports)
    for report in kept:
        key = (report.scenario, report.environment)
        if key in first:
            found.append(
                BadInput(
                    report.source,
                    f"scenario {report.scenario!r} on {report.environment} is also in"
                    f" {first[key].source}: give each scenario and environment one report",
                )
            )
        else:
            first[key] = report
    rank = {o: i for i, o in enumerate(WORST_FIRST)}
    kept.sort(key=lambda r: (rank[r.verdict], r.scenario, r.environment, r.source))
    return Merged(tuple(kept), tuple(found))


# report.json as far as merging reads it (a part of gate.report.documents.ReportDoc, the
# writer's: tests/unit/test_merge.py checks that every field read here is one it writes,
# and both take REPORT_VERSION from gate.layout); other fields are ignored.


@dataclasses.dataclass(frozen=True)
class _ScenarioDoc:
    name: str
    service: str | None = None

    @property
    def key(self) -> str:
        return scenario_key(self.name, self.service)


@dataclasses.dataclass(frozen=True)
class _ProvenanceDoc:
    env_key: str
    commit: str | None = None
    branch: str | None = None


@dataclasses.dataclass(frozen=True)
class _RunDoc:
    shape: str
    provenance: _ProvenanceDoc
    result: str | None = None


@dataclasses.dataclass(frozen=True)
class _ReportDoc:
    scenario: _ScenarioDoc
    verdict: Annotated[Outcome, one_of(Outcome.PASS, Outcome.FLAG, Outcome.FAIL)]
    compared_runs: int
    findings: tuple[Finding, ...]
    run: _RunDoc


@functools.cache
def _adapter() -> TypeAdapter[_ReportDoc]:
    return TypeAdapter(_ReportDoc)


def parse_report(data: Any, *, source: str, raw: bytes | None = None) -> ScenarioReport:
    """A parsed ``report.json`` (``data``, parsed from ``raw`` if given), validated as
    strictly as a result; :class:`ReportError` if it is not one this memgate reads, or if
    its verdict is not its findings' verdict."""

    def bad(reason: str) -> ReportError:
        return ReportError(source, reason)

    if isinstance(data, dict) and "merge_version" in data:
        raise bad("a merged report: give the report.json files it was merged from")
    if isinstance(data, dict) and "schema_version" in data and "report_version" not in data:
        raise bad(
            "a result.json, not a report.json: compare it with its baselines first"
            " (memgate report RESULT.json --format json --out report.json)"
        )
    version = data.get("report_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad("not a memgate report.json (no integer report_version)")
    if version > REPORT_VERSION:
        raise bad(
            f"report_version {version} is newer than this memgate understands"
            f" ({REPORT_VERSION}); upgrade memgate"
        )
    if version < 1:
        raise bad(f"report_version {version} is not a memgate report version")
    try:
        doc = validate(_adapter(), data, raw)
    except ValueError as exc:
        raise bad(first_error(exc)) from None
    problem = bad_integer(doc)
    if problem:
        raise bad(problem)
    expected = Outcome.from_findings(doc.findings)
    if doc.verdict is not expected:
        raise bad(
            f"verdict {doc.verdict.value!r} does not match its findings"
            f" (which make it {expected.value!r})"
        )
    provenance = doc.run.provenance
    return ScenarioReport(
        source=source,
        scenario=doc.scenario.key,
        environment=provenance.env_key,
        verdict=doc.verdict,
        findings=doc.findings,
        shape=doc.run.shape,
        compared_runs=doc.compared_runs,
        commit=provenance.commit,
        branch=provenance.branch,
        result=doc.run.result,
    )


def read_report(path: Path) -> ScenarioReport:
    """Read and parse one ``report.json``; :class:`ReportError` if it is bad."""
    data, raw = read_json(path, "", fail=lambda reason: ReportError(str(path), reason))
    return parse_report(data, source=str(path), raw=raw)


def find_reports(paths: Sequence[Path]) -> tuple[list[Path], list[BadInput]]:
    """The report files named by ``paths``: a file is taken as it is; a folder is searched
    (symbolic links not followed) for files named ``report.json``. A folder below it that
    holds a run's files but no ``report.json`` is a check that did not finish: an error,
    as is a folder with no report at all. Each file is taken once."""
    files: list[Path] = []
    errors: list[BadInput] = []
    for path in paths:
        if path.is_dir():
            found, unfinished = _search(path)
            if not found and not unfinished:
                errors.append(BadInput(str(path), f"no {REPORT_JSON} in this folder or below"))
            files += found
            errors += unfinished
        elif path.exists():
            files.append(path)
        else:
            errors.append(BadInput(str(path), "no such file or folder"))
    seen: set[str] = set()
    unique = []
    for file in files:
        key = os.path.realpath(file)
        if key not in seen:
            seen.add(key)
            unique.append(file)
    return unique, errors


def _search(folder: Path) -> tuple[list[Path], list[BadInput]]:
    found: list[Path] = []
    errors: list[BadInput] = []
    for root, dirs, names in os.walk(folder):
        # A run's folder moved aside by the next run of it (``NAME.previous``) is not a
        # check of this matrix; nor is one of those moves cut short.
        # Nor is an ``auto`` run's counted run: the run beside it was the one judged.
        dirs[:] = sorted(d for d in dirs if not is_set_aside(d) and d != COUNTED)
        here = set(names)
        if FAILURE in here:
            errors.append(BadInput(root, f"{FAILURE}: the run of this scenario could not be done"))
            dirs.clear()  # its services' folders hold what the failed run left, no report
            continue
        if REPORT_JSON in here:
            found.append(Path(root) / REPORT_JSON)
            dirs.clear()  # a check's folder: below it, nothing of another check
            continue
        left = [name for name in RUN_FILES if name in here]
        if left:
            errors.append(
                BadInput(
                    root,
                    f"{left[0]} but no {REPORT_JSON}: the check of this scenario did not"
                    " finish (or it was `memgate run`, which does not compare)",
                )
            )
    return found, errors


def collect(paths: Sequence[Path]) -> Merged:
    """Find, read and merge the reports named by ``paths``."""
    files, errors = find_reports(paths)
    reports = []
    for file in files:
        try:
            reports.append(read_report(file))
        except ReportError as exc:
            errors.append(exc.bad)
    return merge(reports, errors)
