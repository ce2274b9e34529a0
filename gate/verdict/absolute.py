"""The checks that hold whatever the history's figures: processes that ended while the
load ran, the curve's shape, resources that keep growing, the scenario's budgets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from gate.analysis.resources import LABELS
from gate.outcome import Outcome
from gate.scenario import BudgetSpec
from gate.shapes import Shape
from gate.summary import ProcessSummary, RunSummary, TrendSummary
from gate.verdict.finding import Finding, band, flag, fmt, plain
from gate.verdict.history import METRICS, RSS_GROWTH, SITE_MIN_SLOPE, band_of

RSS_METRIC = next(m for m in METRICS if m.name == RSS_GROWTH)


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
                    f"past the history's {fmt(b.center, 'B/request')}"
                    f" (limit {fmt(limit, 'B/request')})"
                )
            return [
                Finding(
                    check="processes",
                    severity=Outcome.FAIL,
                    metric="process growth per request",
                    unit="B/request",
                    current=middle,
                    baseline=statistics.median(before) if limit is not None else None,
                    limit=limit,
                    message=f"{len(grew)} of the {len(ended)} processes that ended while the"
                    f" load ran grew surely while they ran (median {fmt(middle, 'B/request')};"
                    f" {since}): recycled workers (gunicorn's max_requests) or killed ones hide"
                    " a leak from the heap summed over the service's processes",
                )
            ]
        if known and all(_grown(r) for r in known):
            return []  # recycled in every compared run too: the service's way
        return [
            flag(
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
    """A run whose RSS grows while its heap does not, when the history's did not, or not
    as fast (a leak of the heap is :class:`gate.verdict.leak.LeakCheck`'s).

    A clean service whose heap churns through many sizes creeps its RSS up as the
    allocators fragment: the noisy service's, counted and sampled, 1-2 MiB over 10,000
    requests in most checks, material in some (19 of 100 flagged). Unless it surely grows
    past the history's own RSS growth (its band: the low end of its 95% interval past the
    band's limit), that is the service as it was."""

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        before = {run.shape for run in runs}
        if runs and current.rss.low <= band_of(RSS_METRIC, runs).limit:
            return []
        if current.shape is Shape.FRAGMENTATION and Shape.FRAGMENTATION not in before:
            return [
                plain(
                    "shape",
                    Outcome.FLAG,
                    f"RSS grows {fmt(current.rss.slope, 'B/request')} while the heap does"
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
                limit=limit,
                message=f"{name} {fmt(value, unit)} is over the scenario's budget"
                f" of {fmt(limit, unit)}",
            )
            for name, unit, value, limit in limits
            if limit is not None and value > limit
        ]
        if current.shape in b.forbid_shapes:
            out.append(
                plain(
                    "budget",
                    Outcome.FAIL,
                    f"shape {current.shape.value} is forbidden by the scenario's budgets",
                )
            )
        return out
