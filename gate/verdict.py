"""Checks -> findings -> verdict: is this run a memory regression?

Every check is a small object whose ``findings(current, history)`` returns what it
found, or nothing. Metrics all have a direction (here: more memory is worse).

**Relative to history** (the runs from the reference on, same environment key):
``center`` is the median of the history's values, ``spread`` 1.4826 x their median
absolute deviation (0 with fewer than 3 runs), and the limit is

    base + max(3 x spread, min_effect, min_relative x |center|)

where ``base`` is the center, or for a growth rate max(center, 0) (a history that shrank
must not put the limit below no growth), so that a change must be beyond the noise the
history shows *and* large enough to matter. For a growth rate the noise is also read off
the history runs' own 95% intervals (``noise``: the spread of the difference between two
runs as precise as a typical history run, its interval's width / 3.92 taken as its
standard error), and the larger of the two counts: a history of one or two runs has no
spread of its own, and flagged unchanged code a hair past a limit its runs' intervals
already spanned. This run's own interval does not widen the limit (a noisy leak must not
raise its own bar): it decides between a failure and a flag. A value
past the limit fails the build; for a growth rate, it fails only when the run's own 95%
interval also lies above the base (otherwise it is a flag).

**Absolute**: the scenario's ``[budgets]``, and the shape: a run that ``leak``s when no
compared run did fails (also with no history at all: a leak is a leak); a new
``fragmentation`` is a flag.

No history, another environment, or other run settings than the history's are said
plainly as flags; with another environment, relative failures become flags.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Annotated, Protocol

from gate._json import one_of
from gate.analysis.resources import LABELS
from gate.baseline import History, ProcessSummary, RunSummary, TrendSummary
from gate.model import Frame, Shape
from gate.outcome import Outcome
from gate.scenario import BudgetSpec
from gate.units import quantity

K_SPREAD = 3.0
SITE_MIN_CONFIDENCE = 0.8
SITE_MIN_SLOPE = 4.0
"""Bytes per request below which a growing site is not reported."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Finding:
    """One thing a check found: what was measured, against what, and why it matters."""

    check: str
    severity: Annotated[Outcome, one_of(Outcome.FLAG, Outcome.FAIL)]
    metric: str
    unit: str
    """Of ``current``, ``baseline``, ``spread`` and ``limit`` (empty with no figures)."""
    current: float | None
    baseline: float | None
    """The history's center (median), if compared with history."""
    spread: float | None
    limit: float | None
    """The value past which this is a finding."""
    message: str
    """One sentence: why this is a failure or a flag."""
    where: Frame | None = None


def worst_finding(findings: Sequence[Finding]) -> Finding | None:
    """The finding a one-line summary names: a failure before a flag, and among those
    the first that names a line of code, else the first."""
    for severity in (Outcome.FAIL, Outcome.FLAG):
        same = [f for f in findings if f.severity is severity]
        if same:
            return next((f for f in same if f.where is not None), same[0])
    return None


@dataclasses.dataclass(frozen=True)
class Decision:
    verdict: Outcome
    """Pass, flag or fail: :meth:`Outcome.from_findings`."""
    findings: tuple[Finding, ...]
    compared: tuple[RunSummary, ...]
    """The history runs the relative checks used, oldest first."""

    @property
    def compared_runs(self) -> int:
        return len(self.compared)


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    value: Callable[[RunSummary], float]
    min_effect: float
    min_relative: float
    interval: Callable[[RunSummary], tuple[float, float]] | None = None


MIB = 2**20
METRICS = (
    Metric(
        "heap growth per request",
        "B/request",
        lambda r: r.heap.slope,
        4.0,
        0.25,
        lambda r: (r.heap.low, r.heap.high),
    ),
    Metric(
        "RSS growth per request",
        "B/request",
        lambda r: r.rss.slope,
        16.0,
        0.25,
        lambda r: (r.rss.low, r.rss.high),
    ),
    Metric("peak heap", "B", lambda r: r.peak_heap, 1 * MIB, 0.10),
    Metric("final heap", "B", lambda r: r.final_heap, 1 * MIB, 0.10),
    Metric("peak RSS", "B", lambda r: r.peak_rss, 4 * MIB, 0.10),
    Metric("final RSS", "B", lambda r: r.final_rss, 4 * MIB, 0.10),
)


@dataclasses.dataclass(frozen=True)
class Band:
    center: float
    spread: float
    limit: float
    base: float
    """Where the limit starts from: the center, or the floor if that is higher."""


def band(
    values: Sequence[float],
    min_effect: float,
    min_relative: float,
    *,
    floor: float | None = None,
    noise: float = 0.0,
) -> Band:
    """Where the history's values lie, and the limit past which a value is a change.
    With a ``floor``, the limit starts from no lower than it: a growth rate is never
    judged against a history that shrank (a service that frees a little as it runs),
    whose negative median would put the limit below no growth at all. ``noise``: a
    spread known besides the values' own (:func:`interval_noise`); the larger counts."""
    center = statistics.median(values)
    spread = 0.0
    if len(values) >= 3:
        spread = 1.4826 * statistics.median(abs(v - center) for v in values)
    base = center if floor is None else max(center, floor)
    margin = max(K_SPREAD * max(spread, noise), min_effect, min_relative * abs(center))
    return Band(center, spread, base + margin, base)


Z95 = 1.959964


def interval_noise(history: Sequence[tuple[float, float]]) -> float:
    """The standard error of the difference between two runs as precise as a typical
    history run, from the history's 95% intervals ``(low, high)``: the median width /
    (2 x 1.96) as one run's standard error, times the square root of 2."""
    if not history:
        return 0.0
    one = statistics.median((high - low) / (2 * Z95) for low, high in history)
    return float(max(one, 0.0) * 2**0.5)


class Check(Protocol):
    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]: ...


class RelativeCheck:
    """A metric of the run against the same metric over the history."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        if not runs:
            return []
        m = self.metric
        # A growth rate (a metric with an interval) is judged from no growth at least.
        floor = noise = None
        if m.interval is not None:
            floor = 0.0
            noise = interval_noise([m.interval(r) for r in runs])
        b = band(
            [m.value(r) for r in runs], m.min_effect, m.min_relative, floor=floor, noise=noise or 0
        )
        value = m.value(current)
        if value <= b.limit:
            return []
        sure = m.interval is None or m.interval(current)[0] > b.base
        severity = Outcome.FAIL if sure else Outcome.FLAG
        why = f"{m.name} {_fmt(value, m.unit)} is past the history's {_fmt(b.center, m.unit)}"
        why += f" ± {_fmt(b.spread, m.unit)} (limit {_fmt(b.limit, m.unit)})"
        if not sure:
            low = m.interval(current)[0] if m.interval else value
            why += f", but this run's interval reaches down to {_fmt(low, m.unit)}"
        return [
            Finding(
                check="history",
                severity=severity,
                metric=m.name,
                unit=m.unit,
                current=value,
                baseline=b.center,
                spread=b.spread,
                limit=b.limit,
                message=why,
            )
        ]


class SiteCheck:
    """Sites that grow with requests: new ones, or ones growing faster than before."""

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        out = []
        for site in current.sites:
            if site.confidence < SITE_MIN_CONFIDENCE or site.trend.slope < SITE_MIN_SLOPE:
                continue
            before = [_slope_of(site.key, run) for run in runs]
            slope = site.trend.slope
            if runs and not any(_has(site.key, run) for run in runs):
                out.append(
                    Finding(
                        check="site",
                        severity=Outcome.FAIL,
                        metric="site growth per request",
                        unit="B/request",
                        current=slope,
                        baseline=None,
                        spread=None,
                        limit=None,
                        message=f"{site.key} grows {_fmt(slope, 'B/request')}"
                        f" [{_fmt(site.trend.low, '')}, {_fmt(site.trend.high, '')}] and grew"
                        f" in none of the {len(runs)} baseline runs",
                        where=site.frame,
                    )
                )
                continue
            if not runs:
                continue
            intervals = [
                (t.low, t.high) for t in (_trend_of(site.key, run) for run in runs) if t is not None
            ]
            noise = interval_noise(intervals)
            b = band(before, SITE_MIN_SLOPE, 0.25, noise=noise)
            if slope > b.limit:
                sure = site.trend.low > b.center
                out.append(
                    Finding(
                        check="site",
                        severity=Outcome.FAIL if sure else Outcome.FLAG,
                        metric="site growth per request",
                        unit="B/request",
                        current=slope,
                        baseline=b.center,
                        spread=b.spread,
                        limit=b.limit,
                        message=f"{site.key} grows {_fmt(slope, 'B/request')}, past the history's"
                        f" {_fmt(b.center, 'B/request')} (limit {_fmt(b.limit, 'B/request')})",
                        where=site.frame,
                    )
                )
        return grouped(out)


def grouped(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per check and place of code: the worst of those at the same place
    (failures first, then the larger figure), its message counting the others. A real
    service gave 43 rows, 33 of them one ``<module>`` line reached by several stacks."""
    by_place: dict[tuple[str, Frame], list[Finding]] = {}
    out: list[Finding | tuple[str, Frame]] = []
    for finding in findings:
        if finding.where is None:
            out.append(finding)
            continue
        place = (finding.check, finding.where)
        if place not in by_place:
            by_place[place] = []
            out.append(place)
        by_place[place].append(finding)
    result = []
    for item in out:
        if isinstance(item, Finding):
            result.append(item)
            continue
        same = sorted(
            by_place[item],
            key=lambda f: (f.severity is not Outcome.FAIL, -(f.current or 0.0)),
        )
        worst = same[0]
        if len(same) > 1:
            more = len(same) - 1
            worst = dataclasses.replace(
                worst,
                message=f"{worst.message} (and {more} more stack{'s' if more > 1 else ''}"
                " reaching this line)",
            )
        result.append(worst)
    return result


class ProcessCheck:
    """Processes of the service that ended while the load ran: a prefork server's
    workers recycled after their ``max_requests``, or killed. The heap summed over the
    processes drops each time one ends (a sawtooth that passed with a planted leak of
    1,024 B/request), so each process is judged on what it kept while it ran. A fresh
    worker warms up too (seen here: one in ten clean recycled workers grew surely, by
    40 B/request over its short life), while a leak in the code shows in every worker:
    it fails when most of the ended processes, at least two, grew surely, unless most
    compared runs' did too (a service whose fresh workers warm up through a short life)
    and this run's median growth is within their band. Runs recorded without process
    data count as unknown, not as runs that recycled no worker."""

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        grown = _grown(current)
        if grown is None:
            return []
        ended, grew = grown
        # Runs recorded before memgate kept processes say nothing either way.
        known = [r for r in runs if r.processes]
        if _most_grew(ended, grew):
            middle = statistics.median(t.slope for t in grew)
            before = [_median_growth(g) for g in map(_grown, known) if g and _most_grew(*g)]
            since = "none of the compared runs' did" if known else "no baseline with processes"
            limit = None
            if before and 2 * len(before) > len(known):
                # Fresh workers that warm up through a short life: the service's way,
                # judged against how much they grew before.
                b = band(before, SITE_MIN_SLOPE, 0.25)
                if middle <= b.limit:
                    return []
                limit = b.limit
                since = (
                    f"past the history's {_fmt(b.center, 'B/request')}"
                    f" (limit {_fmt(limit, 'B/request')})"
                )
            return [
                Finding(
                    check="processes",
                    severity=Outcome.FAIL,
                    metric="process growth per request",
                    unit="B/request",
                    current=middle,
                    baseline=statistics.median(before) if limit is not None else None,
                    spread=None,
                    limit=limit,
                    message=f"{len(grew)} of the {len(ended)} processes that ended while the"
                    f" load ran grew surely while they ran (median {_fmt(middle, 'B/request')};"
                    f" {since}): recycled workers (gunicorn's max_requests) or killed ones hide"
                    " a leak from the heap summed over the service's processes",
                )
            ]
        if known and all(_grown(r) for r in known):
            return []  # recycled in every compared run too: the service's way
        return [
            _flag(
                "processes",
                f"{len(ended)} of the service's processes ended while the load ran (gunicorn's"
                " max_requests, a crash, the OOM killer): the heap summed over them drops each"
                f" time; {len(grew)} of them grew surely while they ran",
            )
        ]


def _grown(run: RunSummary) -> tuple[list[ProcessSummary], list[TrendSummary]] | None:
    """A run's processes (not the main one) that ended while the load ran, and the
    lifetime growth of those that grew surely; None when none ended."""
    ended = [p for p in run.processes if p.ended and not p.main]
    if not ended:
        return None
    return ended, [p.lifetime for p in ended if p.lifetime is not None and _grew(p.lifetime)]


def _most_grew(ended: Sequence[ProcessSummary], grew: Sequence[TrendSummary]) -> bool:
    return len(grew) >= 2 and 2 * len(grew) > len(ended)


def _median_growth(grown: tuple[Sequence[ProcessSummary], Sequence[TrendSummary]]) -> float:
    return statistics.median(t.slope for t in grown[1])


def _grew(growth: TrendSummary) -> bool:
    """A process's own growth that is sure (p < 1%) and at least ``SITE_MIN_SLOPE``
    bytes per request all through its interval."""
    return growth.p_value < 0.01 and growth.low >= SITE_MIN_SLOPE


class ShapeCheck:
    """A run that leaks when the history did not."""

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        before = {run.shape for run in runs}
        top = current.sites[0] if current.sites else None
        where = f"; top growing site {top.key}" if top else ""
        if current.shape is Shape.LEAK and Shape.LEAK not in before:
            since = f"none of the {len(runs)} baseline runs did" if runs else "no baseline yet"
            return [
                _plain(
                    "shape",
                    Outcome.FAIL,
                    f"memory leaks: the heap grows {_fmt(current.heap.slope, 'B/request')}"
                    f" [{_fmt(current.heap.low, '')}, {_fmt(current.heap.high, '')}] through the"
                    f" steady state ({since}){where}",
                    top.frame if top else None,
                )
            ]
        if current.shape is Shape.FRAGMENTATION and Shape.FRAGMENTATION not in before:
            return [
                _plain(
                    "shape",
                    Outcome.FLAG,
                    f"RSS grows {_fmt(current.rss.slope, 'B/request')} while the traced heap does"
                    " not: fragmentation or native memory",
                )
            ]
        return []


class ResourceCheck:
    """File descriptors, sockets, threads or processes that keep growing with requests
    when they did not in the history."""

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        out = []
        for resource in current.resources:
            if not resource.grows:
                continue
            before = [r for run in runs for r in run.resources if r.name == resource.name]
            if any(r.grows for r in before):
                continue
            since = f"none of the {len(runs)} baseline runs did" if runs else "no baseline yet"
            label = LABELS.get(resource.name, resource.name)
            out.append(
                Finding(
                    check="resource",
                    severity=Outcome.FAIL,
                    metric=f"{label} growth",
                    unit="per 1000 requests",
                    current=round(resource.slope * 1000, 2),
                    baseline=None,
                    spread=None,
                    limit=None,
                    message=f"{label} keep growing: {resource.slope * 1000:,.1f} more per 1000"
                    f" requests through the steady state, {resource.at_end:,} at the end ({since})",
                )
            )
        return out


class BudgetCheck:
    """The scenario's absolute budgets."""

    def __init__(self, budgets: BudgetSpec) -> None:
        self.budgets = budgets

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        b = self.budgets
        limits: list[tuple[str, str, float, float | None]] = [
            ("peak heap", "B", current.peak_heap, b.max_peak_heap),
            ("peak RSS", "B", current.peak_rss, b.max_peak_rss),
            ("heap growth per request", "B/request", current.heap.slope, b.max_growth_per_request),
        ]
        out = [
            Finding(
                check="budget",
                severity=Outcome.FAIL,
                metric=name,
                unit=unit,
                current=value,
                baseline=None,
                spread=None,
                limit=limit,
                message=f"{name} {_fmt(value, unit)} is over the scenario's budget"
                f" of {_fmt(limit, unit)}",
            )
            for name, unit, value, limit in limits
            if limit is not None and value > limit
        ]
        if current.shape in b.forbid_shapes:
            out.append(
                _plain(
                    "budget",
                    Outcome.FAIL,
                    f"shape {current.shape.value} is forbidden by the scenario's budgets",
                )
            )
        return out


def decide(current: RunSummary, history: History | None, budgets: BudgetSpec) -> Decision:
    """Run every check; the verdict is the worst finding's."""
    findings: list[Finding] = []
    runs: Sequence[RunSummary] = ()
    if history is None or not history.runs:
        findings.append(
            _flag(
                "baseline",
                "no baseline yet: nothing to compare with; record one"
                " (memgate check --record, or memgate baseline record)",
            )
        )
    else:
        comparable = history.comparable()
        same_env = [r for r in comparable if r.provenance.env_key == current.provenance.env_key]
        runs = same_env or comparable
        if not same_env:
            keys = sorted({r.provenance.env_key for r in comparable})
            findings.append(
                _flag(
                    "baseline",
                    f"the baseline comes from another environment ({', '.join(keys)}; this run:"
                    f" {current.provenance.env_key}): compared anyway, failures reported as flags",
                )
            )
        if {r.settings_sha256 for r in runs} != {current.settings_sha256}:
            findings.append(
                _flag(
                    "baseline",
                    "this run's load or profile settings (scenario file or overrides) differ"
                    " from some baseline runs': figures that depend on run length may not compare",
                )
            )
    relative: list[Finding] = []
    checks: list[Check] = [*(RelativeCheck(m) for m in METRICS), SiteCheck()]
    for check in checks:
        relative += check.findings(current, runs)
    if (
        history is not None
        and runs
        and not any(r.provenance.env_key == current.provenance.env_key for r in runs)
    ):
        relative = [dataclasses.replace(f, severity=Outcome.FLAG) for f in relative]
    findings += relative
    findings += ShapeCheck().findings(current, runs)
    findings += ResourceCheck().findings(current, runs)
    findings += ProcessCheck().findings(current, runs)
    findings += BudgetCheck(budgets).findings(current, runs)
    return Decision(Outcome.from_findings(findings), tuple(findings), tuple(runs))


def _flag(check: str, message: str) -> Finding:
    return _plain(check, Outcome.FLAG, message, metric=check)


def _plain(
    check: str, severity: Outcome, message: str, where: Frame | None = None, metric: str = "shape"
) -> Finding:
    """A finding with no figures to compare (a shape, a missing baseline)."""
    return Finding(
        check=check,
        severity=severity,
        metric=metric,
        unit="",
        current=None,
        baseline=None,
        spread=None,
        limit=None,
        message=message,
        where=where,
    )


def _has(key: str, run: RunSummary) -> bool:
    return any(s.key == key for s in run.sites)


def _slope_of(key: str, run: RunSummary) -> float:
    return next((s.trend.slope for s in run.sites if s.key == key), 0.0)


def _trend_of(key: str, run: RunSummary) -> TrendSummary | None:
    return next((s.trend for s in run.sites if s.key == key), None)


def _fmt(value: float, unit: str) -> str:
    return quantity(value, unit)
