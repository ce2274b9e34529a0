"""The least-squares models a memory curve's shape is told by (:mod:`gate.analysis.shape`):
one line, a hinge, a jump between two levels or beside a slope, and the residuals of the
flat, linear, plateau and step models kept as evidence."""

from __future__ import annotations

import numpy as np

from gate.analysis.trend import robust_spread
from gate.shapes import ModelFit


def jump_beside_a_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, int, float]:
    """The jump of the best fit y = a + b x + h [i >= k]: its height h, index k, and
    that fit's squared residuals over a line's."""
    n = len(x)
    line_rss = lstsq_rss(np.column_stack([np.ones(n), x]), y)
    best = (np.inf, 0.0, 0)
    for k in range(2, n - 1):
        design = np.column_stack([np.ones(n), x, (np.arange(n) >= k).astype(float)])
        coef, rss = lstsq(design, y)
        if rss < best[0]:
            best = (rss, float(coef[2]), k)
    return best[1], best[2], (best[0] / line_rss if line_rss > 0 else np.inf)


def best_step(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """The best single jump between two flat levels: its height, its squared residuals
    over a line's, and the robust spread of its residuals."""
    n = len(x)
    line_rss = lstsq_rss(np.column_stack([np.ones(n), x]), y)
    best_rss, best_k = np.inf, 0
    for k in range(2, n - 1):
        left, right = y[:k], y[k:]
        rss = float(((left - left.mean()) ** 2).sum() + ((right - right.mean()) ** 2).sum())
        if rss < best_rss:
            best_rss, best_k = rss, k
    if best_k == 0 or line_rss <= 0:
        return 0.0, np.inf, 0.0
    left, right = y[:best_k], y[best_k:]
    residuals = np.concatenate([left - left.mean(), right - right.mean()])
    jump = float(right.mean() - left.mean())
    return jump, best_rss / line_rss, robust_spread(residuals)


def model_fits(x: np.ndarray, y: np.ndarray) -> tuple[ModelFit, ...]:
    n = len(x)
    ones = np.ones(n)
    flat = float(((y - y.mean()) ** 2).sum())
    linear = lstsq_rss(np.column_stack([ones, x]), y)
    plateau = min(lstsq_rss(np.column_stack([ones, np.minimum(x, x[k])]), y) for k in range(1, n))
    step = min(
        float(((y[:k] - y[:k].mean()) ** 2).sum() + ((y[k:] - y[k:].mean()) ** 2).sum())
        for k in range(1, n)
    )
    return tuple(
        ModelFit(name, round(float(np.sqrt(rss / n)), 1))
        for name, rss in (("flat", flat), ("linear", linear), ("plateau", plateau), ("step", step))
    )


def lstsq(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef, float(((y - design @ coef) ** 2).sum())


def lstsq_rss(design: np.ndarray, y: np.ndarray) -> float:
    return lstsq(design, y)[1]


def bic_of(rss: float, n: int, params: int) -> float:
    return float(n * np.log(max(rss, 1.0) / n) + params * np.log(n))
