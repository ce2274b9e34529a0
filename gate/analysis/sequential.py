"""Stop a soak as soon as its leak is certain, and only then.

A soak looks at its heap curve again and again while the load runs. Testing each look at
the usual 5% would stop a clean service sooner or later; so each look spends a share of
one false-alarm budget, ``ALPHA``: look ``k`` needs a trend p-value below
``ALPHA x 6 / (pi^2 k^2)``, shares that add up to ``ALPHA`` over any number of looks (a
union bound: whatever the looks' dependence, a clean service is stopped at most with
probability ``ALPHA``, as far as each look's test holds its level). A leak must also be
material: the slope's 95% interval above ``MIN_SLOPE`` bytes per request, and a growth
of at least ``MIN_RISE`` bytes through the steady state, as the shape analysis asks of
a leak at the end of a run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from gate.analysis.shape import MIN_RISE, MIN_SLOPE, steady_growth
from gate.analysis.trend import TooFewPoints
from gate.shapes import Trend

ALPHA = 0.01
"""The chance, at most, that a soak of a service that does not leak is stopped."""


def spent(look: int, alpha: float = ALPHA) -> float:
    """The p-value look number ``look`` (from 1) must beat."""
    return alpha * 6 / (math.pi**2 * look**2)


@dataclasses.dataclass(frozen=True)
class Look:
    """One look at a soak's heap while the load runs."""

    number: int
    trend: Trend | None
    """The heap's growth per request through the steady state so far; ``None`` while
    there are too few points after the warm-up."""
    needed: float
    """The p-value this look had to beat."""
    certain: bool
    """The leak is certain: stop the soak."""


def look_at(
    number: int, requests: Sequence[float], heap: Sequence[float], warmup_requests: float
) -> Look:
    """Look ``number`` at the heap (bytes) against requests served so far."""
    needed = spent(number)
    x = np.asarray(requests, dtype=float)
    y = np.asarray(heap, dtype=float)
    after = x >= warmup_requests
    try:
        growth = steady_growth(x[after], y[after])
    except TooFewPoints:
        return Look(number, None, needed, False)
    certain = growth.p_value < needed and growth.low >= MIN_SLOPE and growth.growth >= MIN_RISE
    return Look(number, growth, needed, certain)
