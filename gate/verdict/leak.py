"""Is the service leaking? One decision from the heap's shape and the history's limit.

With enough retained points (``RunSummary.retained``: the heap right after full
collections), the leak is decided on them: certain when the analysis judged the retained
heap a leak (``basis`` retained, shape ``leak``), compared with the retained growth of
the history's runs that had it too, whatever their shapes were judged on (a clean run
whose retained heap wandered as theirs did is their way). A curve that leaks on every
point where the retained heap does not surely is at most a flag. With fewer, the heap is
judged on every point (certain when the shape is ``leak``, unless the few retained
points read refute it), against the runs judged so too. Then:

- with comparable history runs, the run fails only when its growth is certain **and**
  past the history's limit with its own interval above the history's base; past the
  limit without both, it is a flag; certain but within the limit is the service's way
  (its history grew alike): no finding;
- with none (or only runs from another environment, or profiled otherwise), a certain
  leak fails (a leak is a leak), and growth that is likely but not certain (p < 0.05, an
  interval above zero, at least ``MIN_SLOPE``) is a flag.

So the shape and the history never disagree: no run fails on its shape that the history's
own growth limit passes, as happened to clean framework services whose garbage waited for
a rare full collection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gate.analysis.shape import MIN_RISE, MIN_SLOPE
from gate.model import Frame
from gate.outcome import Outcome
from gate.shapes import Shape
from gate.summary import RunSummary, SiteSummary, TrendSummary
from gate.verdict.finding import Band, Finding, fmt
from gate.verdict.history import (
    HEAP_GROWTH,
    METRICS,
    SITE_MIN_CONFIDENCE,
    SITE_MIN_SLOPE,
    Metric,
    band_of,
)

LIKELY_P = 0.05
"""The trend test's p-value under which growth with no history to compare is flagged."""


@dataclasses.dataclass(frozen=True)
class LeakCheck:
    """The heap's growth per request, against the history's limit when there is one."""

    incomparable: bool = False
    """The compared runs were profiled otherwise (``[profile]``), or come from another
    environment: their figures are not this run's, and it is judged as if it had no
    history."""

    def findings(self, current: RunSummary, runs: Sequence[RunSummary]) -> list[Finding]:
        heap_metric = next(m for m in METRICS if m.name == HEAP_GROWTH)
        compared = () if self.incomparable else runs
        if current.retained is not None:
            # Judged on what survived full collections: against the history runs' own
            # retained growth, whatever their shapes were judged on.
            metric = dataclasses.replace(
                heap_metric,
                value=lambda r: r.retained.slope if r.retained else 0.0,
                interval=lambda r: (r.retained.low, r.retained.high) if r.retained else (0, 0),
            )
            alike = [r for r in compared if r.retained is not None]
            growth = current.retained
            certain = current.basis == "retained" and current.shape is Shape.LEAK
            what = "the heap that survived full collections"
        else:
            metric = heap_metric
            alike = [r for r in compared if r.basis == "heap"]
            growth = current.heap
            certain = current.shape is Shape.LEAK and not current.few_collections
            what = "the heap"
        found = self._judged(current, runs, alike, metric, growth, certain, what)
        if found or current.retained is None or current.basis != "heap":
            return found
        if current.shape is not Shape.LEAK:
            return []
        # Every point leaks, and the retained heap's interval does not refute it: never a
        # failure (what survives full collections decides), but a flag past what the
        # history's runs grew on every point (or with none to tell).
        raw = [r for r in compared if r.basis == "heap"]
        if raw and current.heap.slope <= band_of(heap_metric, raw).limit:
            return []
        return [self._every_point(current)]

    def _judged(
        self,
        current: RunSummary,
        runs: Sequence[RunSummary],
        alike: Sequence[RunSummary],
        metric: Metric,
        heap: TrendSummary,
        certain: bool,
        what: str,
    ) -> list[Finding]:
        growth = (
            f"{what} grows {fmt(heap.slope, 'B/request')} [{fmt(heap.low, '')},"
            f" {fmt(heap.high, '')}] through the steady state"
        )
        top = current.sites[0] if current.sites else None
        where = f"; top growing site {top.key}" if top else ""
        frame = top.frame if top else None
        if current.few_collections and current.retained is None:
            growth += (
                ", judged on every point: the heap right after the few full collections read"
                " did not grow alike (garbage waiting for one? a longer run has more)"
            )
        # Where the service's workers ended while the load ran (gunicorn's max_requests;
        # two at least, as ``ProcessCheck`` judges them), the heap summed over them on
        # every point is a sawtooth of their births: each worker is judged on its own life.
        recycled = sum(p.ended and not p.main for p in current.processes) >= 2
        summed = recycled and current.retained is None
        if not alike:
            since = self._without_history(runs)
            site = None if current.few_collections else _certain_site(current)
            if not certain and site is not None:
                # Judged on every point, the heap can be too noisy to tell where one site is
                # not (summed over a prefork server's processes, say): the site fails. The
                # retained heap decides where there is one: a cache that fills slowly is a
                # flag until a history says it is the service's way (a clean Django app's
                # page query, in SQLite's execute by its stack: the statement cache, one
                # per page of the 60 the load reads, as Django inlines LIMIT and OFFSET,
                # grew 56-209 B/request on the retained heap's points in 4 of 5 runs).
                # Where the service's workers ended while the load ran (gunicorn's
                # max_requests; two at least, as ``ProcessCheck`` judges them), every
                # site summed over them is a sawtooth too: each worker is judged on its
                # own life. A clean prefork
                # app recycling a worker every 600 requests had gunicorn's http_date
                # grow 15.7 B/request [6.7, 20.7] summed, and failed.
                kept = current.retained is not None
                message = (
                    f"memory {'may leak' if kept or recycled else 'leaks'}: {site.key} grows"
                    f" {fmt(site.trend.slope, 'B/request')} [{fmt(site.trend.low, '')},"
                    f" {fmt(site.trend.high, '')}] through the steady state ({since}),"
                    f" though {what} does not surely"
                    + (
                        "; summed over workers that ended while the load ran, each judged"
                        " on its own life"
                        if recycled and not kept
                        else ""
                    )
                )
                severity = Outcome.FLAG if kept or recycled else Outcome.FAIL
                return [_finding(severity, heap, None, message, site.frame)]
            if certain and summed:
                # A clean prefork app recycling a worker every 600 requests: its summed
                # heap grew 46.8 B/request [24.3, 150.0] as fresh workers warmed up, and
                # failed with no history (1 CI run of many; each worker flagged alone).
                message = (
                    f"memory may leak: {growth} ({since}){where}; summed over workers that"
                    " ended while the load ran, each judged on its own life"
                )
                return [_finding(Outcome.FLAG, heap, None, message, frame)]
            if certain:
                message = f"memory leaks: {growth} ({since}){where}"
                return [_finding(Outcome.FAIL, heap, None, message, frame)]
            likely = heap.p_value < LIKELY_P and heap.low > 0 and heap.slope >= MIN_SLOPE
            if likely or (current.shape is Shape.LEAK and current.retained is None):
                message = (
                    f"memory may leak: {growth}, not surely (trend p = {heap.p_value:.2g};"
                    f" {since}){where}"
                )
                return [_finding(Outcome.FLAG, heap, None, message, frame)]
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
            return [_finding(Outcome.FAIL, heap, b, message, frame)]
        doubts = []
        if not certain:
            doubts.append(f"not surely a leak (trend p = {heap.p_value:.2g})")
        if not sure:
            doubts.append(f"its interval reaches down to {fmt(heap.low, 'B/request')}")
        message = f"{growth}, past {against}, but {' and '.join(doubts)}{where}"
        return [_finding(Outcome.FLAG, heap, b, message, frame)]

    def _every_point(self, current: RunSummary) -> Finding:
        """A flag: every point leaks, though the heap right after full collections does
        not surely."""
        heap, kept = current.heap, current.retained
        assert kept is not None
        top = current.sites[0] if current.sites else None
        return _finding(
            Outcome.FLAG,
            heap,
            None,
            f"the heap grows {fmt(heap.slope, 'B/request')} [{fmt(heap.low, '')},"
            f" {fmt(heap.high, '')}] on every point, but right after full collections only"
            f" {fmt(kept.slope, 'B/request')} [{fmt(kept.low, '')}, {fmt(kept.high, '')}]:"
            " garbage waiting for a collection, or a leak the retained heap is too noisy to"
            " tell" + (f"; top growing site {top.key}" if top else ""),
            top.frame if top else None,
        )

    def _without_history(self, runs: Sequence[RunSummary]) -> str:
        if not runs:
            return "no baseline yet"
        if self.incomparable:
            return "the baseline runs were profiled otherwise, or elsewhere"
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
    severity: Outcome, heap: TrendSummary, b: Band | None, message: str, frame: Frame | None
) -> Finding:
    return Finding(
        check="leak",
        severity=severity,
        metric=HEAP_GROWTH,
        unit="B/request",
        current=heap.slope,
        baseline=b.center if b else None,
        spread=b.spread if b else None,
        limit=b.limit if b else None,
        message=message,
        where=frame,
    )
