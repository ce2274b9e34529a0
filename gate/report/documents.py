"""The JSON documents memgate writes for other tools: ``report.json`` and the merged
document of ``memgate merge --format json``, as typed dictionaries.

:mod:`gate.report.json` builds them (the type checker holds it to these keys and types)
and writes them through the same types, and their JSON Schemas are generated from them:
``docs/report.schema.json`` and ``docs/merged-report.schema.json``. The leaves are the
model's own dataclasses, written as they are in ``result.json``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from pydantic import ConfigDict, TypeAdapter
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from 3.12

from gate._json import json_schema
from gate.layout import REPORT_VERSION
from gate.merge import BadInput
from gate.model import FailureReason, Frame, NativeFrame, Provenance, ScenarioRef
from gate.observed import Census, Retained
from gate.outcome import Outcome
from gate.shapes import Shape
from gate.summary import TrendSummary
from gate.verdict import Finding

MERGE_VERSION = 1
"""Of the merged document ``memgate merge --format json`` writes."""
LEFT_OUT = {"packages"}
"""Of a run's provenance: the interpreter's map of packages to distributions is for
naming frames (the result keeps it), not for readers."""


@dataclasses.dataclass(frozen=True)
class FindingDoc(Finding):
    """A finding as report.json has it: with its change for people. Every field is
    written, those with defaults too: the schema says so (``required``)."""

    __pydantic_config__ = ConfigDict(json_schema_serialization_defaults_required=True)

    change: str | None = None
    """``current - baseline`` for people, e.g. ``+2.6 MiB (+48%)``."""


class FiguresDoc(TypedDict):
    shape: Shape
    heap_growth: TrendSummary
    rss_growth: TrendSummary
    peak_heap: int
    final_heap: int
    peak_rss: int
    final_rss: int
    measured_requests: int


class LoadDoc(TypedDict):
    requests: int
    failures: int
    measured_requests: int
    requests_per_second: float
    stop_reason: str
    failure_reasons: list[FailureReason]


class RunDoc(FiguresDoc):
    steady_from_requests: float
    heap_shape: Shape
    heap_reason: str
    rss_shape: Shape
    rss_reason: str
    load: LoadDoc
    provenance: Provenance
    result: str | None
    """Where the run's ``result.json`` was, on the machine that ran it."""


class BaselineDoc(FiguresDoc):
    run_id: str
    recorded_at: str
    provenance: Provenance


class SiteDoc(TypedDict):
    rank: int
    growth: TrendSummary
    confidence: float
    live_bytes_end: int
    frame: Frame | None
    user_code: bool
    stack: list[Frame]
    native_frame: NativeFrame | None
    native: list[NativeFrame]


class ResourceDoc(TypedDict):
    name: str
    at_steady: int
    at_end: int
    growth: TrendSummary | None
    grows: bool


class GcDoc(TypedDict):
    collections_per_request: float
    full_per_1000_requests: float
    seconds_per_request: float


class ProcessDoc(TypedDict):
    pid: int
    main: bool
    capture: str
    heap_steady: int
    heap_end: int
    growth: TrendSummary | None
    grows: bool


class DependencyChangeDoc(TypedDict):
    name: str
    before: str | None
    after: str | None
    findings: int


class RetentionDoc(TypedDict):
    retained: list[Retained]
    censuses: list[Census]
    requests: float
    problems: list[str]


class ReportDoc(TypedDict):
    """``report.json`` (``docs/report-schema.md``)."""

    report_version: int
    memgate: str
    scenario: ScenarioRef
    verdict: Outcome
    compared_runs: int
    findings: list[FindingDoc]
    run: RunDoc
    baseline: BaselineDoc | None
    sites: list[SiteDoc]
    resources: list[ResourceDoc]
    gc: GcDoc | None
    processes: list[ProcessDoc]
    dependencies_changed: list[DependencyChangeDoc]
    retention: RetentionDoc | None


class MergedScenarioDoc(TypedDict):
    scenario: str
    environment: str
    verdict: Outcome
    shape: str
    compared_runs: int
    commit: str | None
    branch: str | None
    report: str
    result: str | None
    worst_finding: int | None
    """The index in ``findings`` of the one a summary line names."""
    findings: list[FindingDoc]


class MergedDoc(TypedDict):
    """What ``memgate merge --format json`` writes (``docs/report-schema.md``)."""

    merge_version: int
    memgate: str
    verdict: Outcome
    counts: dict[str, int]
    scenarios: list[MergedScenarioDoc]
    errors: list[BadInput]


@functools.cache
def _report() -> TypeAdapter[ReportDoc]:
    return TypeAdapter(ReportDoc)


@functools.cache
def _merged() -> TypeAdapter[MergedDoc]:
    return TypeAdapter(MergedDoc)


def report_data(doc: ReportDoc) -> Any:
    """``doc`` as JSON values, the provenances without what :data:`LEFT_OUT` names."""
    left_out = {"provenance": LEFT_OUT}
    return _report().dump_python(doc, mode="json", exclude={"run": left_out, "baseline": left_out})


def merged_data(doc: MergedDoc) -> Any:
    return _merged().dump_python(doc, mode="json")


def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``report.json`` (``docs/report.schema.json`` is this)."""
    return json_schema(_report(), f"memgate report.json, report_version {REPORT_VERSION}")


def merged_schema() -> dict[str, Any]:
    """The JSON Schema of the merged document (``docs/merged-report.schema.json``)."""
    return json_schema(_merged(), f"memgate merged report, merge_version {MERGE_VERSION}")
