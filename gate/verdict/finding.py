"""What a check finds (:class:`Finding`), the checks' shape (:class:`Check`), and the
limit past which a value is a change (:func:`band`)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import Annotated, Protocol

from gate._json import one_of
from gate.model import Frame
from gate.outcome import Outcome
from gate.summary import RunSummary
from gate.units import quantity

K_SPREAD = 3.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Finding:
    """One thing a check found: what was measured, against what, and why it matters."""

    check: str
    severity: Annotated[Outcome, one_of(Outcome.FLAG, Outcome.FAIL)]
    metric: str
    unit: str
    """Of ``current``, ``baseline``, ``spread`` and ``limit`` (empty with no figures)."""
    current: float | None
    baseline: float | None = None
    """The history's center (median), if compared with history."""
    spread: float | None = None
    limit: float | None = None
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


def flag(check: str, message: str) -> Finding:
    return plain(check, Outcome.FLAG, message, metric=check)


def plain(
    check: str, severity: Outcome, message: str, where: Frame | None = None, metric: str = "shape"
) -> Finding:
    """A finding with no figures to compare (a shape, a missing baseline)."""
    return Finding(
        check=check,
        severity=severity,
        metric=metric,
        unit="",
        current=None,
        message=message,
        where=where,
    )


def fmt(value: float, unit: str) -> str:
    return quantity(value, unit)
