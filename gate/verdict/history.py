"""The checks against history: each metric of the run against the same metric over the
compared runs (:class:`RelativeCheck`), and the allocation sites that grow
(:class:`SiteCheck`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from gate.analysis.shape import MIN_RISE
from gate.model import Frame
from gate.outcome import Outcome
from gate.summary import RunSummary, TrendSummary
from gate.verdict.finding import Band, Finding, band, fmt, interval_noise

SITE_MIN_CONFIDENCE = 0.8
SITE_MIN_SLOPE = 4.0
"""Bytes per request below which a growing site is not reported."""


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    value: Callable[[RunSummary], float]
    min_effect: float
    min_relative: float
    interval: Callable[[RunSummary], tuple[float, float]] | None = None
    beside: str | None = None
    """A metric that must be past its own limit too for this one to be a finding."""
    alike: Callable[[RunSummary], object] | None = None
    """What a history run must share with this one to be compared on this metric."""
    extreme: bool = False
    """A run's highest value (a peak): its limit is at least the history's own highest
    plus ``min_effect``. A maximum has a long upper tail that the history's median and
    MAD do not see: the noisy service's clean peak heap (the highest of its retained
    points) ranged over 15.5-18.0 MiB in 30 runs, and one of 20 checks flagged at 18.0
    against a limit of 17.6 from 10 runs whose own highest was 17.2."""


MIB = 2**20
HEAP_GROWTH = "heap growth per request"
"""Judged by :class:`gate.verdict.leak.LeakCheck` with the heap's shape, not alone."""
RSS_GROWTH = "RSS growth per request"
"""Judged beside the heap's growth; its band also tells RSS that creeps as before from
fragmentation (:class:`gate.verdict.absolute.ShapeCheck`)."""


def _ends_at_stop(run: RunSummary) -> bool:
    return run.ends_at_stop


def _final_alike(run: RunSummary) -> tuple[bool, bool]:
    return run.ends_at_stop, run.retained_peak


METRICS = (
    Metric(
        HEAP_GROWTH,
        "B/request",
        lambda r: r.heap.slope,
        4.0,
        0.25,
        lambda r: (r.heap.low, r.heap.high),
    ),
    Metric(
        RSS_GROWTH,
        "B/request",
        lambda r: r.rss.slope,
        16.0,
        0.25,
        lambda r: (r.rss.low, r.rss.high),
        # RSS alone moves with the allocator: a clean service whose heap wanders by tens
        # of KiB grew its RSS by 640-790 B/request in 4 of 71 checks, past a limit of
        # 565 from 10 runs (the false-flag benchmark). Memory the service keeps is in
        # the heap (memray sees every malloc and mmap); RSS that grows without it is
        # fragmentation, the shape check's.
        beside=HEAP_GROWTH,
    ),
    # With enough retained points, a run's peak heap is the highest of them.
    Metric(
        "peak heap",
        "B",
        lambda r: r.peak_heap,
        1 * MIB,
        0.10,
        alike=lambda r: r.retained_peak,
        extreme=True,
    ),
    # A curve that ended after the users' connections closed (before memgate ended it
    # when they were told to stop) has lower final figures than one that did not.
    # The final heap of a run judged on the retained heap is its last retained point's.
    Metric("final heap", "B", lambda r: r.final_heap, 1 * MIB, 0.10, alike=_final_alike),
    Metric("peak RSS", "B", lambda r: r.peak_rss, 4 * MIB, 0.10, extreme=True),
    Metric("final RSS", "B", lambda r: r.final_rss, 4 * MIB, 0.10, alike=_ends_at_stop),
)


class RelativeCheck:
    """A metric of the run against the same metric over the history."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        m = self.metric
        if m.alike is not None:
            runs = [r for r in runs if m.alike(r) == m.alike(current)]
        if not runs:
            return []
        b = band_of(m, runs)
        value = m.value(current)
        if value <= b.limit:
            return []
        if m.beside is not None:
            other = next(o for o in METRICS if o.name == m.beside)
            if other.value(current) <= band_of(other, runs).limit:
                return []
        sure = m.interval is None or m.interval(current)[0] > b.base
        severity = Outcome.FAIL if sure else Outcome.FLAG
        why = f"{m.name} {fmt(value, m.unit)} is past the history's {fmt(b.center, m.unit)}"
        why += f" ± {fmt(b.spread, m.unit)} (limit {fmt(b.limit, m.unit)})"
        if not sure:
            low = m.interval(current)[0] if m.interval else value
            why += f", but this run's interval reaches down to {fmt(low, m.unit)}"
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


def history_limit(metric: str, runs: Sequence[RunSummary]) -> float:
    """The limit past which ``metric`` (a :data:`METRICS` name) is a finding against
    ``runs``, as :class:`RelativeCheck` computes it (what the reports draw)."""
    return band_of(next(m for m in METRICS if m.name == metric), runs).limit


def band_of(m: Metric, runs: Sequence[RunSummary]) -> Band:
    """The history's band of metric ``m``; a growth rate (a metric with an interval) is
    judged from no growth at least, with the runs' own intervals as a noise floor."""
    floor = noise = None
    if m.interval is not None:
        floor = 0.0
        noise = interval_noise([m.interval(r) for r in runs])
    values = [m.value(r) for r in runs]
    b = band(values, m.min_effect, m.min_relative, floor=floor, noise=noise or 0)
    if m.extreme:
        return dataclasses.replace(b, limit=max(b.limit, max(values) + m.min_effect))
    return b


class SiteCheck:
    """Sites that grow with requests: new ones, or ones growing faster than before."""

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        out = []
        for site in current.sites:
            if site.confidence < SITE_MIN_CONFIDENCE or site.trend.slope < SITE_MIN_SLOPE:
                continue
            if site.trend.slope * current.measured_requests < MIN_RISE:
                # Immaterial over the run, as the heap's growth must be material to leak:
                # a clean Django app's page rendering grew 12.5 B/request, 49 KiB over the
                # run (a cache's last entries), past a history's limit of 4.4 B/request.
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
                        message=f"{site.key} grows {fmt(slope, 'B/request')}"
                        f" [{fmt(site.trend.low, '')}, {fmt(site.trend.high, '')}] and grew"
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
                # Within what one of the history's runs may have grown here (its
                # interval's top), it is no certain regression: a cache that fills in
                # some runs only (a clean Flask app's list_items grew 374 B/request
                # [0.5, 803] in 1 of 18 runs and 0 in the others: a band of 0 +- 0,
                # and the next run that filled it, 409 B/request, failed).
                seen = max((t.high for run in runs for t in _trends_of(site.key, run)), default=0.0)
                sure = site.trend.low > b.center and slope > seen
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
                        message=f"{site.key} grows {fmt(slope, 'B/request')}, past the history's"
                        f" {fmt(b.center, 'B/request')} (limit {fmt(b.limit, 'B/request')})"
                        + (
                            f", though one of its runs may have grown {fmt(seen, 'B/request')} here"
                            if slope <= seen
                            else ""
                        ),
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


def _has(key: str, run: RunSummary) -> bool:
    return any(s.key == key for s in run.sites)


def _slope_of(key: str, run: RunSummary) -> float:
    return next((s.trend.slope for s in run.sites if s.key == key), 0.0)


def _trends_of(key: str, run: RunSummary) -> list[TrendSummary]:
    return [s.trend for s in run.sites if s.key == key]


def _trend_of(key: str, run: RunSummary) -> TrendSummary | None:
    return next(iter(_trends_of(key, run)), None)
