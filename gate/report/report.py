"""What every reporter is given: a run, the figures its checks used, the verdict (and
what the reports say of the service's dependencies that changed)."""

from __future__ import annotations

import dataclasses
import functools
import itertools

from gate.dependencies import Change, changes, owner, owner_of_file
from gate.model import Frame, RunResult
from gate.summary import RunSummary
from gate.verdict import Decision


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
        through inside it, Python frames or the extension's native frame (the service's
        line calling an upgraded library that leaks); ``None`` if none."""
        changed = {c.name for c in self.changes}
        if frame is None or not changed:
            return None
        packages = self.result.provenance.packages
        for site in self.result.sites:
            if site.frame != frame:
                continue
            files = [f.file for f in itertools.takewhile(lambda f: f != frame, site.stack)]
            native = site.native_frame
            if native is not None:
                files.insert(0, native.library)
            for file in files:
                name = owner_of_file(file, packages, changed)
                if name in changed:
                    return name
        return None

    @property
    def baseline(self) -> RunSummary | None:
        """The run to show beside this one: the newest compared, other than this run
        (which a history holds when it was accepted as the reference)."""
        others = [r for r in self.decision.compared if r.run_id != self.current.run_id]
        return others[-1] if others else None
