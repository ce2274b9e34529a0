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

**The leak**: the heap's shape and its growth against the history's limit make one
decision (``leak.py``): a run fails for leaking only when its growth is certain (shape
``leak``) and past the history's limit, or certain with no comparable history; the sites
that grow fail with it, and are flags otherwise.

**Absolute**: the scenario's ``[budgets]``; a new ``fragmentation`` is a flag.

No history, another environment (a key differing in a part the scenario's ``[gate]
env_match`` keeps: ``gate.environment.env_parts``), or other run settings than the
history's are said plainly as flags; with another environment, or runs profiled
otherwise (``[profile]``: native frames move RSS, Python allocators the heap), relative
failures become flags.

Here :func:`decide`; the findings and bands in ``finding.py``, the checks against
history in ``history.py``, the absolute ones in ``absolute.py``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Sequence
from typing import Any

from gate.environment import ENV_PARTS, env_differences
from gate.outcome import Outcome
from gate.scenario import BudgetSpec
from gate.summary import History, RunSummary, settings_differences
from gate.verdict.absolute import BudgetCheck, ProcessCheck, ResourceCheck, ShapeCheck
from gate.verdict.finding import Check, Finding, band, flag, worst_finding
from gate.verdict.history import HEAP_GROWTH, METRICS, RelativeCheck, SiteCheck
from gate.verdict.leak import LeakCheck

__all__ = ["Decision", "Finding", "ResourceCheck", "band", "decide", "worst_finding"]


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


def _settings_differ(current: RunSummary, runs: Sequence[RunSummary]) -> str:
    """Which load or profile settings differ from the baseline runs', named when both
    sides recorded them: ``profile.native is true here, false in 3 of 5 baseline runs``."""
    other = [r for r in runs if r.settings_sha256 != current.settings_sha256]
    named: dict[str, list[Any]] = {}
    for run in other:
        if current.settings is None or run.settings is None:
            continue
        for name in settings_differences(current.settings, run.settings):
            named.setdefault(name, []).append(_setting(run.settings, name))
    if not named:
        return (
            "this run's load or profile settings (scenario file or overrides) differ from"
            f" {len(other)} of the {len(runs)} baseline runs': figures that depend on them"
            " may not compare"
        )
    assert current.settings is not None
    parts = []
    for name, theirs in named.items():
        values = ", ".join(sorted({_shown(v) for v in theirs}))
        parts.append(
            f"{name} is {_shown(_setting(current.settings, name))} here,"
            f" {values} in {len(theirs)} of the {len(runs)} baseline runs"
        )
    return (
        "settings differ from the baseline's: "
        + "; ".join(parts)
        + (": figures that depend on them may not compare")
    )


PEAK_SETTLES = {"peak heap": "final heap", "peak RSS": "final RSS"}
"""A peak past the history's limit fails with the figure its memory settles at (the
load's end), or with a leak; alone it is a transient, and flags: the noisy service's
clean peak heap ranged over 15.5-18.0 MiB (right after full collections) while its final
heap kept within 14.6-16.0."""


def _peaks_settled(relative: list[Finding], leaking: bool) -> list[Finding]:
    """``relative`` with a failing peak a flag unless its settled figure fails too."""
    failed = {f.metric for f in relative if f.severity is Outcome.FAIL}
    out = []
    for f in relative:
        settles = PEAK_SETTLES.get(f.metric)
        if f.severity is Outcome.FAIL and settles and settles not in failed and not leaking:
            f = dataclasses.replace(
                f,
                severity=Outcome.FLAG,
                message=f"{f.message}; the {settles} is within the history's: a transient peak",
            )
        out.append(f)
    return out


def _profile_differs(current: RunSummary, runs: Sequence[RunSummary]) -> bool:
    """Whether a run was profiled otherwise than this one (``[profile]`` settings; a run
    recorded before memgate kept its settings is not known to have been)."""
    for run in runs:
        if run.settings_sha256 == current.settings_sha256:
            continue
        if current.settings is None or run.settings is None:
            continue
        names = settings_differences(current.settings, run.settings)
        if any(name.partition(".")[0] == "profile" for name in names):
            return True
    return False


def _setting(settings: dict[str, Any], name: str) -> Any:
    section, _, key = name.partition(".")
    value = settings.get(section)
    return value.get(key) if key and isinstance(value, dict) else value


def _shown(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)


def _other_environment(
    current: RunSummary, runs: Sequence[RunSummary], env_match: Collection[str]
) -> str:
    """The flag for a history of another environment only, naming the key's parts that
    differ (``env_match``'s, in the key's order)."""
    keys = sorted({r.provenance.env_key for r in runs})
    mine = current.provenance.env_key
    differ = {part for key in keys for part in env_differences(mine, key, env_match)}
    named = ", ".join(part for part in ENV_PARTS if part in differ)
    return (
        f"the baseline comes from another environment ({', '.join(keys)}; this run:"
        f" {mine}; differing: {named or 'unknown'}): compared anyway, failures reported as"
        " flags"
    )


def decide(
    current: RunSummary,
    history: History | None,
    budgets: BudgetSpec,
    *,
    env_match: Collection[str] = ENV_PARTS,
) -> Decision:
    """Run every check; the verdict is the worst finding's. History runs whose
    environment keys agree with this run's on the parts ``env_match`` names (the
    scenario's ``[gate] env_match``; all of them by default) are the same environment."""

    def same_env(run: RunSummary) -> bool:
        key = run.provenance.env_key
        return not env_differences(current.provenance.env_key, key, env_match)

    findings: list[Finding] = []
    runs: Sequence[RunSummary] = ()
    profile_differs = False
    if history is None or not history.runs:
        findings.append(
            flag(
                "baseline",
                "no baseline yet: nothing to compare with; record one"
                " (memgate check --record, or memgate baseline record)",
            )
        )
    else:
        comparable = history.comparable()
        alike = [r for r in comparable if same_env(r)]
        runs = alike or comparable
        if not alike:
            findings.append(flag("baseline", _other_environment(current, comparable, env_match)))
        if {r.settings_sha256 for r in runs} != {current.settings_sha256}:
            findings.append(flag("baseline", _settings_differ(current, runs)))
            profile_differs = _profile_differs(current, runs)
    relative: list[Finding] = []
    checks: list[Check] = [*(RelativeCheck(m) for m in METRICS if m.name != HEAP_GROWTH)]
    for check in checks:
        relative += check.findings(current, runs)
    incomparable = (
        history is not None and bool(runs) and not any(same_env(r) for r in runs)
    ) or profile_differs
    sites = SiteCheck().findings(current, runs)
    if incomparable:
        relative = [dataclasses.replace(f, severity=Outcome.FLAG) for f in relative]
        sites = [dataclasses.replace(f, severity=Outcome.FLAG) for f in sites]
    leak = LeakCheck(incomparable).findings(current, runs)
    leaking = any(f.severity is Outcome.FAIL for f in leak)
    # RSS growth fails with the heap's leak; alone, it flags. A site that grows surely
    # keeps its own severity: a leak in one prefork worker of two grows a site surely
    # while the heap summed over the processes is not a certain leak (e2e).
    growing = [f for f in relative if f.unit == "B/request"]
    findings += _peaks_settled([f for f in relative if f.unit != "B/request"], leaking)
    findings += leak
    findings += [f if leaking else dataclasses.replace(f, severity=Outcome.FLAG) for f in growing]
    findings += sites
    absolute: list[Check] = [ShapeCheck(), ResourceCheck(), ProcessCheck(), BudgetCheck(budgets)]
    for check in absolute:
        findings += check.findings(current, runs)
    return Decision(Outcome.from_findings(findings), tuple(findings), tuple(runs))
