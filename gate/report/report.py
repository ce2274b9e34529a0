"""What every reporter is given: a run, the figures its checks used, the verdict (and
what the reports say of the service's dependencies that changed: which findings are in
or through one, and which one is the likely cause of a leak)."""

from __future__ import annotations

import dataclasses
import functools
import itertools

from gate.dependencies import Change, changes, owner, owner_of_file
from gate.model import Frame, RunResult, shown_file
from gate.summary import RunSummary
from gate.verdict import Decision
from gate.verdict.finding import Finding
from gate.verdict.history import METRICS

NATIVE_SHARE = 0.5
"""The growing sites together hold less than this share of the heap's growth: the rest
is native, held where no Python line is recorded."""
_GROWTH_METRICS = frozenset(m.name for m in METRICS if m.unit == "B/request")
"""The heap's growth per request and RSS's."""


@dataclasses.dataclass(frozen=True)
class Cause:
    """A changed distribution named as the likely cause of a finding, and why."""

    change: Change
    why: str
    """``the leak at app.py:13 calls into its extension``."""

    def text(self) -> str:
        """``likely cause: somelib 1.0.0 → 2.0.0: the leak at app.py:13 calls into its
        extension``."""
        return f"likely cause: {self.change.text()}: {self.why}"


@dataclasses.dataclass(frozen=True)
class Report:
    """What every reporter is given: a run, the figures its checks used, the verdict."""

    result: RunResult
    current: RunSummary
    """The run as the checks saw it (``gate.baseline.summarize``)."""
    decision: Decision
    result_path: str | None = None
    """Where ``result.json`` is, for the commands a report suggests."""

    @functools.cached_property
    def changes(self) -> tuple[Change, ...]:
        """The service's distributions whose version differs from the compared runs'."""
        compared = [r for r in self.decision.compared if r.run_id != self.current.run_id]
        return changes(
            self.result.provenance.distributions,
            [r.provenance.distributions for r in compared],
        )

    def owner(self, frame: Frame | None) -> str | None:
        """The distribution whose files hold ``frame``'s, if any."""
        changed = {c.name for c in self.changes}
        return owner(frame, self.result.provenance.packages, changed)

    def dependency_of(self, frame: Frame | None) -> str | None:
        """The distribution a finding at ``frame`` is counted for: the one holding its
        file, else the changed one its sites' stacks go through (:meth:`changed_under`)."""
        return self.owner(frame) or self.changed_under(frame)

    def changed_under(self, frame: Frame | None) -> str | None:
        """The changed distribution that a finding at ``frame`` (in the service's own
        code) reaches: one whose files the stack of a site named by ``frame`` passes
        through inside it, Python frames or the extension's native frames (the service's
        line calling an upgraded library that leaks); ``None`` if none."""
        reached = self._reached(frame)
        return reached[0] if reached else None

    def _reached(self, frame: Frame | None) -> tuple[str, bool] | None:
        """:meth:`changed_under`'s distribution, and whether it was reached through its
        extension (a native frame in its library) rather than its Python files."""
        changed = {c.name for c in self.changes}
        if frame is None or not changed:
            return None
        packages = self.result.provenance.packages
        for site in self.result.sites:
            if site.frame != frame:
                continue
            inside = itertools.takewhile(lambda f: f != frame, site.stack)
            files = [(f.library, True) for f in site.native if f.extension]
            files += [(f.file, False) for f in inside]
            for file, native in files:
                name = owner_of_file(file, packages, changed)
                if name in changed:
                    return name, native
        return None

    @functools.cached_property
    def native_growth(self) -> bool:
        """Whether memory grew (a finding on the heap's or RSS's growth, or RSS growing
        while the heap does not) that no Python line holds: the growing sites together
        hold less than :data:`NATIVE_SHARE` of the heap's growth. A counted run
        recorded no sites: it cannot tell."""
        grew = [f for f in self.decision.findings if is_growth(f)]
        if not grew or self.result.capture.mode == "counters":
            return False
        if any(f.check == "shape" for f in grew):
            return True
        heap = self.current.heap.slope
        return heap > 0 and sum(s.trend.slope for s in self.current.sites) < NATIVE_SHARE * heap

    def cause(self, finding: Finding) -> Cause | None:
        """The changed distribution that likely caused ``finding``, and why: the one its
        line in the service's code calls into (:meth:`changed_under`), or, for memory
        that grew natively (:attr:`native_growth`) with no line of a changed
        distribution's to show for it, the only distribution that changed; ``None``
        when none or several could be."""
        changed = {c.name: c for c in self.changes}
        frame = finding.where
        if frame is not None and any(s.user_frame == frame for s in self.result.sites):
            reached = self._reached(frame)
            if reached is not None:
                name, native = reached
                into = "its extension" if native else "its code"
                place = f"{shown_file(frame.file)}:{frame.line}"
                return Cause(changed[name], f"the leak at {place} calls into {into}")
        if (
            len(changed) == 1
            and is_growth(finding)
            and self.native_growth
            and self.dependency_of(frame) not in changed
        ):
            (change,) = changed.values()
            return Cause(
                change,
                "the growth is native: no Python line holds it, and"
                f" {change.name} is the only distribution that changed",
            )
        return None

    def suspects(self) -> str:
        """When memory grew natively and several distributions changed: that any of them
        may hold it (none is picked); else empty."""
        if len(self.changes) < 2 or not self.native_growth:
            return ""
        names = ", ".join(c.name for c in self.changes[:5])
        more = f" and {len(self.changes) - 5} more" if len(self.changes) > 5 else ""
        return (
            f"the growth is native: no Python line holds it, and {len(self.changes)}"
            f" distributions changed ({names}{more}): any of them may hold it"
        )

    def counted_for(self, finding: Finding) -> str | None:
        """The changed distribution a finding is counted for: the one its frame is in
        or reaches (:meth:`dependency_of`), else its likely cause (:meth:`cause`)."""
        name = self.dependency_of(finding.where)
        if name not in {c.name for c in self.changes} and (cause := self.cause(finding)):
            name = cause.change.name
        return name

    @property
    def baseline(self) -> RunSummary | None:
        """The run to show beside this one: the newest compared, other than this run
        (which a history holds when it was accepted as the reference)."""
        others = [r for r in self.decision.compared if r.run_id != self.current.run_id]
        return others[-1] if others else None


def is_growth(finding: Finding) -> bool:
    """Whether ``finding`` is memory that grew: the heap's or RSS's growth per request
    (against the history, the leak check's, a budget's), or RSS growing while the heap
    does not (the shape check's)."""
    return finding.metric in _GROWTH_METRICS or finding.check == "shape"
