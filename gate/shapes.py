"""What the analysis made of a run's curve (``gate.analysis``): the shape of its heap and
RSS, their trends, the models fitted, where the steady state starts. Frozen values, no
I/O, as :mod:`gate.model`'s.
"""

from __future__ import annotations

import dataclasses
import enum


class Shape(enum.StrEnum):
    """How memory behaves over the steady state."""

    FLAT = "flat"
    """Neither grows nor steps: what a healthy service looks like."""
    LEAK = "leak"
    """Keeps growing linearly with requests."""
    PLATEAU = "plateau"
    """Grew, then levelled off (a bounded cache, a pool filling)."""
    FRAGMENTATION = "fragmentation"
    """RSS keeps growing while the heap does not (only for the whole run)."""
    STEP = "step"
    """Jumped once between two flat levels (a buffer resized, a batch loaded)."""


@dataclasses.dataclass(frozen=True)
class Trend:
    """Growth of one series over the steady state, in bytes per request."""

    slope: float
    """Theil-Sen estimate on block medians."""
    low: float
    high: float
    """Confidence interval of the slope (95%), widened for the residuals' autocorrelation."""
    p_value: float
    """Mann-Kendall trend test with the Hamed-Rao correction for autocorrelation."""
    tau: float
    """Kendall's tau of the block medians against requests: 1 grows at every block."""
    noise: float
    """Robust spread (1.4826 x MAD) of the block medians around the fitted line, bytes."""
    growth: float
    """``slope`` times the requests the steady state spans, bytes."""


@dataclasses.dataclass(frozen=True)
class ModelFit:
    """How well one shape's model fits a curve's block medians."""

    model: str
    """``flat`` (constant), ``linear``, ``plateau`` (rise then flat) or ``step`` (one jump)."""
    rms: float
    """Root-mean-square residual, bytes."""


@dataclasses.dataclass(frozen=True)
class CurveShape:
    """The shape of one curve (heap or RSS) and the evidence for it."""

    shape: Shape
    trend: Trend
    """Over the steady state."""
    rise_before_steady: float
    """Bytes gained between the end of the configured warm-up and the steady state."""
    fits: tuple[ModelFit, ...]
    """Every model's fit over the measured phase (after the configured warm-up)."""
    reason: str
    """One sentence: why this shape."""


@dataclasses.dataclass(frozen=True)
class SteadyState:
    """Where the warm-up really ended: the analysis looks only at what follows."""

    index: int
    """First curve point of the steady state."""
    requests: float
    reason: str
    retained_index: int | None = None
    """Judged on the retained heap, its first point of the steady state (an index into
    ``Curve.retained``); else ``None``."""


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What the curves say, for the whole run."""

    steady: SteadyState
    heap: CurveShape
    rss: CurveShape
    shape: Shape
    """The run's shape: the heap's, or ``fragmentation`` when RSS leaks and the heap does
    not, past the heap's highest point so far."""
    basis: str = "heap"
    """What the heap's shape and growth were judged on: ``retained`` (the heap right after
    each full collection, :attr:`Curve.retained`) or ``heap`` (every point of the curve,
    garbage waiting for the collector included: too few full collections, or results
    written before)."""
    unconfirmed: bool = False
    """Judged on every point for want of full collections, the heap leaks, but the few
    read right after one refute it (they grew by less than half its interval's lower
    bound, over half the steady state): garbage waiting for a full collection may have
    ramped it, and the leak is not certain."""
