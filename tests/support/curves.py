"""Hand-made memory curves: heap and RSS against requests, a shape planted after the
warm-up, in white or autocorrelated noise, from a seed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gate.model import Curve, CurvePoint

TOTAL = 10_000
WARMUP = 500
BASE_HEAP = 6 * 2**20
BASE_RSS = 34 * 2**20
"""A curve's requests, its warm-up, and its heap and RSS before any growth."""


def ar1(n: int, sigma: float, phi: float, rng: np.random.Generator) -> np.ndarray:
    """Autocorrelated noise: e[t] = phi e[t-1] + sigma z[t] (stationary spread sigma)."""
    out = np.empty(n)
    out[0] = rng.normal(0, sigma)
    innovation = sigma * np.sqrt(1 - phi**2)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + rng.normal(0, innovation)
    return out


def curve(
    heap: Callable[[np.ndarray], np.ndarray],
    rss: Callable[[np.ndarray], np.ndarray] = lambda r: 0 * r,
    *,
    sigma: float = 20_000,
    phi: float = 0.0,
    seed: int = 0,
    n: int = 200,
) -> Curve:
    """``n`` points over :data:`TOTAL` requests: the base heap and RSS, plus what
    ``heap`` and ``rss`` add at each number of requests, plus noise of spread ``sigma``
    (four times that on RSS) and autocorrelation ``phi``."""
    rng = np.random.default_rng(seed)
    requests = np.linspace(0, TOTAL, n)
    heap_values = BASE_HEAP + heap(requests) + ar1(n, sigma, phi, rng)
    rss_values = BASE_RSS + rss(requests) + ar1(n, 4 * sigma, phi, rng)
    points = tuple(
        CurvePoint(requests=float(r), t=float(r) / 1000, heap=int(h), rss=int(s))
        for r, h, s in zip(requests, heap_values, rss_values, strict=True)
    )
    warmup_index = int(np.searchsorted(requests, WARMUP))
    return Curve(points=points, warmup_requests=WARMUP, warmup_index=warmup_index)


def after_warmup(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``f`` of the requests served since the warm-up ended (zero before)."""
    return lambda r: f(np.maximum(r - WARMUP, 0))


# Growth of each shape, in bytes at each number of requests.
FLAT = after_warmup(lambda r: 0 * r)
LEAK_64 = after_warmup(lambda r: 64.0 * r)
PLATEAU = after_warmup(lambda r: 1.5e6 * np.minimum(r / 3000, 1.0))
STEP = after_warmup(lambda r: 1e6 * (r >= 6000))
RSS_GROWTH = after_warmup(lambda r: 300.0 * r)
