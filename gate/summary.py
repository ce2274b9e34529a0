"""What a history keeps of each run (:class:`RunSummary`, made by :func:`summarize`) and
what a history is (:class:`History`, its runs and reference; :class:`AuditEntry`, an
accepted regression): the values the verdict and the reports compare and draw. Where
histories are kept, and how they are written, is :mod:`gate.baseline`'s.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
from typing import Any, TypeVar

from gate.model import Frame, Provenance, RunResult, Site
from gate.result import dumps
from gate.shapes import Shape, Trend
from gate.spacing import thin

T = TypeVar("T")

SCHEMA_VERSION = 2
DEFAULT_KEEP = 20
SITES_KEPT = 50
CURVE_KEPT = 60
"""Points of each run's curve kept in the history, to draw it beside a later run."""


@dataclasses.dataclass(frozen=True)
class TrendSummary:
    slope: float
    """Bytes per request."""
    low: float
    high: float
    p_value: float


@dataclasses.dataclass(frozen=True)
class CurveSample:
    """One point of a recorded run's curve (the history keeps at most ``CURVE_KEPT``)."""

    requests: float
    heap: int
    rss: int


@dataclasses.dataclass(frozen=True)
class SiteSummary:
    """A site that grew in a recorded run, keyed by where it is in the user's code."""

    key: str
    """``file:function`` of the user frame (or of the innermost frame when none):
    stable when lines move."""
    frame: Frame | None
    trend: TrendSummary
    confidence: float


@dataclasses.dataclass(frozen=True)
class ResourceSummary:
    """A resource count of a recorded run (see :class:`gate.model.ResourceGrowth`)."""

    name: str
    slope: float
    """Per request, over the steady state."""
    at_end: int
    grows: bool


@dataclasses.dataclass(frozen=True)
class ProcessSummary:
    """A profiled process of a recorded run that forks (see :class:`gate.model.ProcessCurve`)."""

    pid: int
    main: bool
    ended: bool
    """It ended while the load ran (a recycled or killed worker)."""
    lifetime: TrendSummary | None
    """Its heap's growth per request over the measured part of its own life."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What the history keeps of one run."""

    run_id: str
    """Hash of the result file: recording the same result twice is a no-op."""
    recorded_at: str
    provenance: Provenance
    scenario_sha256: str
    settings_sha256: str
    """Hash of the effective load and profile settings (after command-line overrides):
    what decides how long a run is and how it is measured, so whether its figures
    compare. The service's command and environment are left out: they are what a check
    compares."""
    shape: Shape
    heap: TrendSummary
    rss: TrendSummary
    peak_heap: int
    final_heap: int
    peak_rss: int
    final_rss: int
    measured_requests: int
    sites: tuple[SiteSummary, ...]
    """The growing sites (interval above zero), most likely leaking first."""
    curve: tuple[CurveSample, ...] = ()
    """Heap and RSS against requests, thinned to at most ``CURVE_KEPT`` points (empty
    for runs recorded by schema 1)."""
    resources: tuple[ResourceSummary, ...] = ()
    """File descriptors, sockets, threads and processes (empty for runs recorded before
    memgate measured them)."""
    processes: tuple[ProcessSummary, ...] = ()
    """Each profiled process of a service that forks (empty for one that does not, and
    for runs recorded before memgate kept them)."""
    settings: dict[str, Any] | None = None
    """The settings :attr:`settings_sha256` hashes (:func:`compared_settings`), to name
    those that differ; ``None`` for runs recorded before memgate kept them."""
    ends_at_stop: bool = False
    """Its curve ended when the load's users were told to stop (``Curve.ends_at_stop``):
    final figures compare only between runs alike in this."""
    basis: str = "heap"
    """What its heap's shape, growth and final figure were judged on (``Analysis.basis``):
    ``retained`` (right after full collections) or ``heap``; runs compare on these only
    with runs alike."""
    retained_peak: bool = False
    """``peak_heap`` is the highest retained point's and ``final_heap`` the last one's
    (:func:`retained_peak`): compared only with runs alike."""
    few_collections: bool = False
    """Judged on every point though full collections were asked for: too few of them
    were read to tell garbage waiting for one from growth (its leak is not certain)."""
    retained: TrendSummary | None = None
    """The retained heap's growth per request, with enough retained points
    (:func:`gate.analysis.shape.retained_shape`), whatever the run's shape was judged
    on: what a leak is judged on against the history's runs that have it too. ``None``
    with fewer points, and for runs recorded before memgate kept it."""


@dataclasses.dataclass(frozen=True)
class History:
    schema_version: int
    scenario: str
    runs: tuple[RunSummary, ...]
    """Oldest first."""
    reference: str | None = None
    """``run_id`` of the last accepted run; checks compare with the runs from it on."""

    def without_run(self, run_id: str) -> History:
        """The history a run is compared with: less the run itself, if it was recorded,
        unless it is the reference (an accepted run is where the history now starts)."""
        runs = tuple(r for r in self.runs if r.run_id != run_id or r.run_id == self.reference)
        return dataclasses.replace(self, runs=runs)

    def comparable(self) -> tuple[RunSummary, ...]:
        """The runs a check compares with: the reference and the runs after it."""
        ids = [run.run_id for run in self.runs]
        start = ids.index(self.reference) if self.reference in ids else 0
        return self.runs[start:]


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    at: str
    who: str
    action: str
    run_id: str
    commit: str | None
    reason: str


def summarize(result: RunResult, *, now: datetime.datetime | None = None) -> RunSummary:
    """The history's summary of a run."""
    points = result.curve.points
    measured = points[result.curve.warmup_index :]
    growing = [s for s in result.sites if s.trend.low > 0][:SITES_KEPT]
    when = (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="seconds")
    return RunSummary(
        run_id=hashlib.sha256(dumps(result)).hexdigest()[:16],
        recorded_at=when,
        provenance=dataclasses.replace(result.provenance, packages=None),
        scenario_sha256=result.scenario.sha256,
        settings_sha256=settings_hash(result.settings),
        settings=compared_settings(result.settings),
        shape=result.analysis.shape,
        heap=trend_summary(result.analysis.heap.trend),
        rss=trend_summary(result.analysis.rss.trend),
        peak_heap=peak_heap(result),
        final_heap=final_heap(result),
        peak_rss=max(p.rss for p in measured),
        final_rss=points[-1].rss,
        measured_requests=result.load.measured_requests,
        sites=tuple(_site(s) for s in growing),
        curve=tuple(CurveSample(p.requests, p.heap, p.rss) for p in thin(points, CURVE_KEPT)),
        resources=tuple(
            ResourceSummary(r.name, r.trend.slope if r.trend else 0.0, r.at_end, r.grows)
            for r in result.resources
        ),
        processes=tuple(
            ProcessSummary(
                p.pid, p.main, p.ended, trend_summary(p.lifetime) if p.lifetime else None
            )
            for p in result.process_curves
        ),
        ends_at_stop=result.curve.ends_at_stop,
        basis=result.analysis.basis,
        few_collections=few_collections(result),
        retained_peak=retained_peak(result),
        retained=_retained_growth(result),
    )


def _retained_growth(result: RunResult) -> TrendSummary | None:
    from gate.analysis.shape import retained_shape

    kept = retained_shape(result.curve)
    return trend_summary(kept.trend) if kept is not None else None


def few_collections(result: RunResult) -> bool:
    """Whether the run's heap leaks judged on every point for want of full collections,
    and the few read did not confirm it (``Analysis.unconfirmed``)."""
    return result.analysis.unconfirmed


def peak_heap(result: RunResult) -> int:
    """The heap's peak over the measured phase: with enough retained points, the highest
    of them (a request's transient buffers and garbage waiting for a collection
    are no figure: the noisy service's raw peak ranged over 16.2-19.7 MiB, clean)."""
    from gate.analysis.shape import measured_retained

    if retained_peak(result):
        return max(p.heap for p in measured_retained(result.curve))
    return max(p.heap for p in result.curve.points[result.curve.warmup_index :])


def retained_peak(result: RunResult) -> bool:
    """Whether the run's peak heap is its highest retained point: with enough of them
    (``MIN_RETAINED``) in the measured phase, whatever the heap's shape was judged on."""
    from gate.analysis.shape import MIN_RETAINED, measured_retained

    return len(measured_retained(result.curve)) >= MIN_RETAINED


def final_heap(result: RunResult) -> int:
    """The heap at the load's end: with enough retained points, the last of them (the
    garbage waiting for a collection at the curve's last point is no figure)."""
    if retained_peak(result):
        return result.curve.retained[-1].heap
    return result.curve.points[-1].heap


ADDED_SETTINGS: dict[str, dict[str, Any]] = {
    "profile": {"retained_heap": False},
    "load": {
        "processes": 1,
        "target": None,
        "tags": [],
        "exclude_tags": [],
        "host": None,
        "options": {},
    },
}
"""Settings added after histories were first recorded, with the value that behaves as
runs did before them: left at that value, a setting is left out of the hash, so that
older histories still compare."""


READING_SETTINGS = {
    "profile": {"capture", "flamegraph", "census", "sample_bytes"},
    "load": {"stop_on_leak"},
}
"""Settings that say how memgate reads what memray recorded, or watches it, not what is
measured: left out of the hash (a live run compares with runs read from capture files,
runs sampled more or less often with each other: the estimates are unbiased either way,
a soak watched for a certain leak with the same soak unwatched, a run with the
garbage collector's census, taken outside the curve's points, with one without)."""


def settings_hash(settings: dict[str, Any]) -> str:
    """Hash of a run's load and profile settings: runs compare when theirs are equal."""
    kept = compared_settings(settings)
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def compared_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A run's load and profile settings that decide whether runs compare: those added
    later left out at the value that behaves as before them, and the reading ones."""
    kept: dict[str, Any] = {}
    for section in ("load", "profile"):
        value = settings.get(section)
        if isinstance(value, dict):
            added = ADDED_SETTINGS.get(section, {})
            reading = READING_SETTINGS.get(section, set())
            value = {
                k: v
                for k, v in value.items()
                if not (k in added and added[k] == v) and k not in reading
            }
        kept[section] = value
    return kept


def settings_differences(current: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """``section.key`` of each compared setting whose value differs between two runs'
    :func:`compared_settings`."""
    names = []
    for section in sorted({*current, *other}):
        mine, theirs = current.get(section), other.get(section)
        if not (isinstance(mine, dict) and isinstance(theirs, dict)):
            if mine != theirs:
                names.append(section)
            continue
        names += [
            f"{section}.{key}"
            for key in sorted({*mine, *theirs})
            if mine.get(key) != theirs.get(key)
        ]
    return names


def site_key(frame: Frame | None) -> str:
    """``file:function``: the same site whatever its line number, and for library code
    whatever the folder Python or the virtual environment lives in."""
    if frame is None:
        return "(no Python frame)"
    return f"{_LIBRARY_PREFIX.sub('', frame.file)}:{frame.function}"


# Keys in stored histories depend on it: a change here makes old sites new ones.
_LIBRARY_PREFIX = re.compile(r"^/.*/(?:site-packages|dist-packages|lib/python\d+\.\d+)/")


def _site(site: Site) -> SiteSummary:
    return SiteSummary(site_key(site.frame), site.frame, trend_summary(site.trend), site.confidence)


def trend_summary(trend: Trend) -> TrendSummary:
    """What the history (and report.json) keeps of a trend."""
    return TrendSummary(trend.slope, trend.low, trend.high, trend.p_value)
