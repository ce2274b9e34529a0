"""A trend across the history: each compared run's growth per request, peak and final heap
against its commit, then this run's, as the HTML report and the job summary draw them."""

from __future__ import annotations

import dataclasses
import datetime

from gate.report.report import Report
from gate.summary import RunSummary, TrendSummary


@dataclasses.dataclass(frozen=True)
class TrendRow:
    """One run of the history's trend (:func:`history_trend`), as the reports show it."""

    commit: str
    """The run's commit, 7 characters (``?`` when it was made outside a checkout)."""
    uncommitted: bool
    """The checkout had changes beyond ``commit``: the run measured those too."""
    recorded: str
    """``YYYY-MM-DD HH:MM``, as the history recorded it (UTC)."""
    growth: TrendSummary
    """Heap growth per request with its interval: the retained heap's when the run kept
    it (what a leak is judged on), else the heap's."""
    retained: bool
    """``growth`` is the retained heap's."""
    peak_heap: int
    final_heap: int
    current: bool
    """This run (the one the report is of)."""

    @property
    def name(self) -> str:
        """``fc41e22``, ``fc41e22 + uncommitted``: the commit as a label."""
        return self.commit + (" + uncommitted" if self.uncommitted else "")


def history_trend(report: Report) -> list[TrendRow]:
    """The compared runs, oldest first, then this run (unless the history holds it, as
    the accepted reference): what a trend across main's history draws. Empty without
    compared runs: one point is no trend."""
    compared = report.decision.compared
    if not compared:
        return []
    runs = list(compared)
    if all(r.run_id != report.current.run_id for r in runs):
        runs.append(report.current)
    return [_trend_row(r, r.run_id == report.current.run_id) for r in runs]


def _trend_row(run: RunSummary, current: bool) -> TrendRow:
    commit = run.provenance.commit
    return TrendRow(
        commit=commit[:7] if commit else "?",
        uncommitted=bool(run.provenance.dirty),
        recorded=recorded_text(run.recorded_at),
        growth=run.retained or run.heap,
        retained=run.retained is not None,
        peak_heap=run.peak_heap,
        final_heap=run.final_heap,
        current=current,
    )


def recorded_text(when: str) -> str:
    """``2026-11-21 07:00`` of an ISO 8601 time, in UTC when it says its offset; a
    time that does not parse (a hand-edited history) is shown as it is."""
    try:
        parsed = datetime.datetime.fromisoformat(when)
    except ValueError:
        return when
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.UTC)
    return parsed.strftime("%Y-%m-%d %H:%M")
