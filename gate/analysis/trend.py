"""Growth of a series against requests, honest about autocorrelated samples.

Memory snapshots 10 ms apart are not independent: a request in flight, a garbage
collection or an arena kept for a while moves many neighbouring samples together. So
series are first reduced to **block medians** (contiguous blocks of points, a few dozen
blocks), the slope is the **Theil-Sen** estimate on those (robust to outlying blocks), its
confidence interval is widened by the residuals' lag-1 autocorrelation, and the trend
test is **Mann-Kendall with the Hamed-Rao correction** for autocorrelation (never more
confident than the uncorrected test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gate.shapes import Trend

# scipy and pymannkendall (which loads scipy) are imported where they are used: they take
# about a second, which commands that only read or show results never need.

MAX_BLOCKS = 30
MIN_BLOCKS = 6
CONFIDENCE = 0.95


class TooFewPoints(ValueError):
    """Not enough points to estimate a trend."""


def blocks(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, max_blocks: int = MAX_BLOCKS
) -> tuple[np.ndarray, np.ndarray]:
    """Medians of ``x`` and ``y`` over contiguous blocks of (nearly) equal count.

    Each block holds at least 3 points, so there are ``min(max_blocks, len // 3)``
    blocks; fewer points than ``3 * MIN_BLOCKS`` gives one block per point (up to
    ``max_blocks``) rather than too few blocks to test.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    n = len(xs)
    count = min(max_blocks, n // 3) if n >= 3 * MIN_BLOCKS else min(n, max_blocks)
    if count < MIN_BLOCKS:
        raise TooFewPoints(f"{n} points: at least {MIN_BLOCKS} are needed")
    return _block_medians(xs, count), _block_medians(ys, count)


def _block_medians(values: np.ndarray, count: int) -> np.ndarray:
    """Medians of ``values`` split as ``np.array_split`` splits them into ``count``
    blocks (the first ``len % count`` one longer), a block size at a time."""
    size, longer = divmod(len(values), count)
    cut = longer * (size + 1)
    medians = [np.median(values[cut:].reshape(count - longer, size), axis=1)]
    if longer:
        medians.insert(0, np.median(values[:cut].reshape(longer, size + 1), axis=1))
    return np.concatenate(medians)


def robust_spread(residuals: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the standard deviation for normal noise."""
    from scipy import stats

    return float(stats.median_abs_deviation(residuals, scale="normal")) if len(residuals) else 0.0


def trend(xb: np.ndarray, yb: np.ndarray) -> Trend:
    """The trend of block medians ``yb`` against ``xb`` (requests)."""
    if len(xb) < MIN_BLOCKS:
        raise TooFewPoints(f"{len(xb)} blocks: at least {MIN_BLOCKS} are needed")
    if np.ptp(yb) == 0:
        return Trend(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    import pymannkendall
    from scipy import stats

    fit = stats.theilslopes(yb, xb, alpha=CONFIDENCE)
    slope, intercept = float(fit.slope), float(fit.intercept)
    residuals = yb - (intercept + slope * xb)
    lag1 = _lag1(residuals)
    widen = np.sqrt((1 + lag1) / (1 - lag1))
    low = slope - (slope - float(fit.low_slope)) * widen
    high = slope + (float(fit.high_slope) - slope) * widen
    with np.errstate(invalid="ignore", divide="ignore"):  # its NaN and inf are handled
        test = pymannkendall.hamed_rao_modification_test(yb)
    plain = pymannkendall.original_test(yb)
    # Hamed-Rao widens the test's variance for positive autocorrelation, but shrinks it
    # (or makes it negative: NaN) for negative autocorrelation. Like the interval's lag-1
    # clip at 0, never be more confident than the uncorrected test.
    p_value = float(plain.p) if not np.isfinite(test.p) else max(float(test.p), float(plain.p))
    span = float(xb[-1] - xb[0])
    return Trend(
        slope=_round(slope),
        low=_round(low),
        high=_round(high),
        p_value=float(f"{p_value:.3g}"),
        tau=round(float(plain.Tau), 3),
        noise=round(robust_spread(residuals), 1),
        growth=round(slope * span, 1),
    )


def _lag1(residuals: np.ndarray) -> float:
    """Lag-1 autocorrelation of the residuals, kept in [0, 0.9]."""
    if len(residuals) < 3 or np.std(residuals[:-1]) == 0 or np.std(residuals[1:]) == 0:
        return 0.0
    r = float(np.corrcoef(residuals[:-1], residuals[1:])[0, 1])
    return min(max(r, 0.0), 0.9) if np.isfinite(r) else 0.0


def _round(value: float) -> float:
    return float(f"{value:.4g}")
