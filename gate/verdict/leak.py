"""Is the service leaking? One decision from the heap's shape and the history's limit.

The heap is judged as the analysis judged it (``Analysis.basis``: the heap that survived
each full collection, when there were enough of them). Its growth is **certain** when the
shape is ``leak``: a significant trend, an interval above zero and a material growth
(:func:`gate.analysis.shape.is_growing`), unless full collections were asked for and too
few were read (then garbage waiting for one cannot be told from growth). Then:

- with comparable history runs (the same basis, the same profile settings), the run
  fails only when its growth is certain **and** past the history's limit with its own
  interval above the history's base; past the limit without both, it is a flag; certain
  but within the limit is the service's way (its history grew alike): no finding;
- with none, a certain leak fails (a leak is a leak), and growth that is likely but not
  certain (p < 0.05, an interval above zero, at least ``MIN_SLOPE``) is a flag.

So the shape and the history never disagree: no run fails on its shape that the history's
own growth limit passes, as happened to clean framework services whose garbage waited for
a rare full collection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gate.analysis.shape import MIN_RISE, MIN_SLOPE
from gate.baseline import RunSummary, SiteSummary
from gate.model import Frame, Shape
from gate.outcome import Outcome
from gate.verdict.finding import Band, Finding, fmt
from gate.verdict.history import (
    HEAP_GROWTH,
    METRICS,
    SITE_MIN_CONFIDENCE,
    SITE_MIN_SLOPE,
    band_of,
)

LIKELY_P = 0.05
"""The trend test's p-value under which growth with no history to compare is flagged."""


@dataclasses.dataclass(frozen=True)
class LeakCheck:
    """The heap's growth per request, against the history's limit when there is one."""

    profile_differs: bool = False
    """The compared runs were profiled otherwise (``[profile]``): their figures are not
    this run's, and it is judged as if it had no history."""

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        metric = next(m for m in METRICS if m.name == HEAP_GROWTH)
        alike = [] if self.profile_differs else [r for r in runs if r.basis == current.basis]
        heap = current.heap
        certain = current.shape is Shape.LEAK and not current.few_collections
        what = (
            "the heap that survived full collections" if current.basis == "retained" else "the heap"
        )
        growth = (
            f"{what} grows {fmt(heap.slope, 'B/request')} [{fmt(heap.low, '')},"
            f" {fmt(heap.high, '')}] through the steady state"
        )
        top = current.sites[0] if current.sites else None
        where = f"; top growing site {top.key}" if top else ""
        frame = top.frame if top else None
        if current.few_collections:
            growth += (
                ", judged on every point: too few full collections were read to judge on, and"
                " the heap right after them did not grow alike (garbage waiting for one?"
                " a longer run has more)"
            )
        if not alike:
            since = self._without_history(runs)
            site = _certain_site(current)
            if not certain and site is not None:
                # The heap summed over a prefork server's processes (each collected at
                # times of its own) can be too noisy to tell, where one site is not.
                message = (
                    f"memory leaks: {site.key} grows {fmt(site.trend.slope, 'B/request')}"
                    f" [{fmt(site.trend.low, '')}, {fmt(site.trend.high, '')}] through the"
                    f" steady state ({since}), though the heap does not surely"
                )
                return [_finding(Outcome.FAIL, current, None, message, site.frame)]
            if certain:
                return [
                    _finding(
                        Outcome.FAIL,
                        current,
                        None,
                        f"memory leaks: {growth} ({since}){where}",
                        frame,
                    )
                ]
            likely = heap.p_value < LIKELY_P and heap.low > 0 and heap.slope >= MIN_SLOPE
            if likely or current.shape is Shape.LEAK:
                message = (
                    f"memory may leak: {growth}, not surely (trend p = {heap.p_value:.2g};"
                    f" {since}){where}"
                )
                return [_finding(Outcome.FLAG, current, None, message, frame)]
            return []
        b = band_of(metric, alike)
        if heap.slope <= b.limit:
            return []  # within what the history's runs grew: certain or not, its way
        sure = heap.low > b.base
        against = (
            f"the history's {fmt(b.center, 'B/request')} ± {fmt(b.spread, 'B/request')}"
            f" (limit {fmt(b.limit, 'B/request')}, {len(alike)} runs)"
        )
        if certain and sure:
            message = f"memory leaks: {growth}, past {against}{where}"
            return [_finding(Outcome.FAIL, current, b, message, frame)]
        doubts = []
        if not certain:
            doubts.append(f"not surely a leak (trend p = {heap.p_value:.2g})")
        if not sure:
            doubts.append(f"its interval reaches down to {fmt(heap.low, 'B/request')}")
        message = f"{growth}, past {against}, but {' and '.join(doubts)}{where}"
        return [_finding(Outcome.FLAG, current, b, message, frame)]

    def _without_history(self, runs: Sequence[RunSummary]) -> str:
        if not runs:
            return "no baseline yet"
        if self.profile_differs:
            return "the baseline runs were profiled otherwise"
        return "no baseline run judged its heap alike: record new ones"


def _certain_site(current: RunSummary) -> SiteSummary | None:
    """A site that grew surely and materially (p < 1%, its interval at least
    ``SITE_MIN_SLOPE`` and confidence ``SITE_MIN_CONFIDENCE``, 64 KiB over the run)."""
    for site in current.sites:
        t = site.trend
        if (
            t.p_value < 0.01
            and t.low >= SITE_MIN_SLOPE
            and site.confidence >= SITE_MIN_CONFIDENCE
            and t.slope * current.measured_requests >= MIN_RISE
        ):
            return site
    return None


def _finding(
    severity: Outcome, current: RunSummary, b: Band | None, message: str, frame: Frame | None
) -> Finding:
    return Finding(
        check="leak",
        severity=severity,
        metric=HEAP_GROWTH,
        unit="B/request",
        current=current.heap.slope,
        baseline=b.center if b else None,
        spread=b.spread if b else None,
        limit=b.limit if b else None,
        message=message,
        where=frame,
    )
