"""Where the steady state starts, and what shape each memory curve has after it.

Everything here works on **block medians** of the measured phase (the curve after the
configured warm-up), see :mod:`gate.analysis.trend`. Four models are fitted to them by
least squares, and their residuals are the evidence reported with the shape:

``flat``     y = a
``linear``   y = a + b x
``plateau``  y = a + b min(x, k)                 (rises until k, then flat)
``step``     y = a + h [x >= k]                   (one jump at k)

The **steady state** starts where growth slows down for good: the best "hinge"
y = a + b1 min(x, k) + b2 max(x - k, 0) with b2 at most b1 / 4, kept only when it beats
one line by a wide margin (BIC) and the rise before k is material. Then, over the steady state:

- ``step``: one jump explains the curve far better than a line (and is more than half of
  any rise before the steady state);
- ``leak``: a significant trend (Mann-Kendall, p < 0.01), a slope interval above zero,
  at least ``MIN_SLOPE`` bytes per request and a material total growth;
- ``plateau``: no such trend, but a material rise before the steady state (``step``
  instead when that rise was one jump);
- ``flat``: none of these.

The heap is judged on the **retained heap** when the curve has enough of it: the heap right
after each full collection of the garbage collector (``Curve.retained``), the memory that
survived it. Between full collections the heap also holds reference cycles waiting for
the next one, which on a service with a large long-lived heap come rarely: the heap ramps
like a leak, then drops. With fewer than ``MIN_RETAINED`` retained points in the measured
phase, every point of the curve is judged, and the analysis says so (``basis``). Where the
retained heap does not leak, every point of the curve (far denser) tells the shape, unless
it reads a leak that the retained heap refutes (garbage waiting for a full collection).

The run's shape is the heap's, except ``fragmentation`` when RSS leaks while the heap
stays flat, and RSS less the heap's highest point so far leaks too (RSS keeps what the
heap's peaks reached: new peaks raise it with no fragmentation). "Material" means more
than ``MIN_RISE`` bytes (``MIN_RSS_RISE`` for RSS, which moves by pages and allocator
arenas) and more than ``NOISE_FACTOR`` times the noise of the block medians.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from gate.analysis.fits import best_step, bic_of, jump_beside_a_slope, lstsq, lstsq_rss, model_fits
from gate.analysis.trend import MIN_BLOCKS, TooFewPoints, blocks, robust_spread, trend
from gate.model import Curve, RetainedPoint
from gate.shapes import Analysis, CurveShape, Shape, SteadyState, Trend

ALPHA = 0.01
MIN_SLOPE = 1.0
"""Bytes per request below which growth is not called a leak."""
MIN_RISE = 64 * 1024
"""Bytes below which a rise, a step or a total growth of the heap is not material."""
MIN_RSS_RISE = 1024 * 1024
"""The same for RSS: a bounded cache churning through pymalloc arenas moves anonymous
RSS by a few hundred KiB (measured on the demo's LRU cache) while its heap is flat."""
NOISE_FACTOR = 4.0
SLOWDOWN = 4.0
"""Growth after the steady-state cut must be at most 1/SLOWDOWN of the growth before."""
BIC_MARGIN = 10.0
"""How much better (in BIC) a hinge must fit than one line to move the steady state."""
STEP_FIT_RATIO = 0.25
"""One jump explains the steady state when its squared residuals are at most this share
of a line's. (A rise before the steady state is a step when a jump fits it better than a
gradual rise does.)"""


MIN_RETAINED = 8
"""Retained points the measured phase needs for the heap to be judged on them."""


class NotEnoughPoints(ValueError):
    """The measured phase has too few curve points to analyse."""


@dataclasses.dataclass(frozen=True)
class _Series:
    x: np.ndarray
    y: np.ndarray
    first_point: np.ndarray
    """Index in the curve of each block's first point."""


def analyse_curve(curve: Curve) -> Analysis:
    """Steady state, and heap and RSS shapes, of a run's curve."""
    points = curve.points[curve.warmup_index :]
    rss = _series([p.requests for p in points], [p.rss for p in points], curve.warmup_index)
    retained = measured_retained(curve)
    basis = "retained" if len(retained) >= MIN_RETAINED else "heap"
    if basis == "retained":
        heap = _retained_series(retained)
    else:
        heap = _series([p.requests for p in points], [p.heap for p in points], curve.warmup_index)
    cut, reason = steady_start(heap.x, heap.y)
    heap_shape = classify(heap.x, heap.y, cut)
    kept: Trend | None = None  # the retained heap's growth, where it did not decide
    if basis == "retained" and heap_shape.shape is not Shape.LEAK:
        # What survives full collections does not leak. Every point of the curve, far
        # denser, still tells the rest (a bounded rise, a cache filling, and a flat heap
        # more precisely: the noisy service's retained heap, its pools and caches held,
        # read 440 B/request wide), unless it reads a leak the retained heap refutes
        # (its interval wholly below the curve's: garbage waiting for a full collection).
        raw = _series([p.requests for p in points], [p.heap for p in points], curve.warmup_index)
        raw_cut, raw_reason = steady_start(raw.x, raw.y)
        raw_shape = classify(raw.x, raw.y, raw_cut)
        refuted = raw_shape.shape is Shape.LEAK and heap_shape.trend.high < raw_shape.trend.low
        if not refuted:
            kept = heap_shape.trend
            basis, heap, cut, reason, heap_shape = "heap", raw, raw_cut, raw_reason, raw_shape
    retained_index = None
    if basis == "retained":
        first = int(heap.first_point[cut])
        at = retained[first].requests
        retained_index = len(curve.retained) - len(retained) + first
        index = next(
            (
                i
                for i in range(curve.warmup_index, len(curve.points))
                if curve.points[i].requests >= at
            ),
            len(curve.points) - 1,
        )
        heap_shape = dataclasses.replace(
            heap_shape,
            reason=f"{heap_shape.reason}; judged on the heap right after each of"
            f" {len(retained)} full collections",
        )
    else:
        index = int(heap.first_point[cut])
        if len(retained) >= MIN_RETAINED and heap_shape.shape is not Shape.LEAK:
            heap_shape = dataclasses.replace(
                heap_shape,
                reason=f"{heap_shape.reason}; the heap right after each of {len(retained)}"
                " full collections does not leak either",
            )
        if curve.retained and len(retained) < MIN_RETAINED:
            heap_shape = dataclasses.replace(
                heap_shape,
                reason=f"{heap_shape.reason}; judged on every point: only {len(retained)} full"
                f" collections in the measured phase (at least {MIN_RETAINED} are needed)",
            )
    unconfirmed = (
        basis == "heap"
        and 0 < len(retained) < MIN_RETAINED
        and heap_shape.shape is Shape.LEAK
        and _retained_refute(
            retained, heap_shape.trend, curve.points[index].requests, curve.points[-1].requests
        )
    )
    if kept is not None and heap_shape.shape is Shape.LEAK:
        heap_shape = dataclasses.replace(
            heap_shape,
            reason=f"{heap_shape.reason}; right after each of {len(retained)} full collections"
            f" it does not surely leak ({kept.slope:,.1f} bytes per request [{kept.low:,.1f},"
            f" {kept.high:,.1f}])",
        )
    elif basis == "heap" and curve.retained and heap_shape.shape is Shape.LEAK:
        heap_shape = dataclasses.replace(
            heap_shape,
            reason=heap_shape.reason
            + (
                "; the heap right after them did not grow alike: garbage waiting for a full"
                " collection is not told from growth"
                if unconfirmed
                else "; the heap right after them does not refute it"
            ),
        )
    rss_cut, _ = steady_start(rss.x, rss.y, MIN_RSS_RISE)
    rss_shape = classify(rss.x, rss.y, rss_cut, MIN_RSS_RISE)
    steady = SteadyState(
        index=index,
        requests=curve.points[index].requests,
        reason=reason,
        retained_index=retained_index,
    )
    shape = heap_shape.shape
    if rss_shape.shape is Shape.LEAK and shape is Shape.FLAT and _past_heap_peaks(curve):
        shape = Shape.FRAGMENTATION
    return Analysis(
        steady=steady,
        heap=heap_shape,
        rss=rss_shape,
        shape=shape,
        basis=basis,
        unconfirmed=unconfirmed,
    )


def _past_heap_peaks(curve: Curve) -> bool:
    """Whether RSS grows past what the heap's own highest point so far explains: RSS less
    the running maximum of the heap leaks through the steady state. RSS keeps the pages a
    heap once reached, so a flat heap whose peaks (garbage waiting for a late full
    collection) now and then reach a new height raises RSS step by step with no
    fragmentation: the cyclic service, clean and sampled, grew RSS 34-90 B/request over
    100,000 requests in 4 of 100 checks, as fast as its heap's running maximum."""
    heap = np.maximum.accumulate(np.asarray([p.heap for p in curve.points], dtype=float))
    excess = np.asarray([p.rss for p in curve.points], dtype=float) - heap
    x, y = blocks(
        [p.requests for p in curve.points[curve.warmup_index :]], excess[curve.warmup_index :]
    )
    return classify(x, y, steady_start(x, y, MIN_RSS_RISE)[0], MIN_RSS_RISE).shape is Shape.LEAK


def _retained_refute(
    retained: Sequence[RetainedPoint], growth: Trend, start: float, end: float
) -> bool:
    """Whether a few retained points refute the whole curve's growth: from the first to
    the last of those in the steady state, over at least half of it, they grew by less
    than half the lower bound of the curve's growth per request (garbage waiting for a
    full collection ramped it). Too few to tell refute nothing."""
    mine = [p for p in retained if p.requests >= start]
    if len(mine) < 2 or mine[-1].requests - mine[0].requests < (end - start) / 2:
        return False
    rate = (mine[-1].heap - mine[0].heap) / (mine[-1].requests - mine[0].requests)
    return rate < growth.low / 2


def retained_shape(curve: Curve) -> CurveShape | None:
    """The shape of the retained heap alone (``None`` with fewer than ``MIN_RETAINED``
    points), whatever the run was judged on: what the benchmarks quote of it."""
    retained = measured_retained(curve)
    if len(retained) < MIN_RETAINED:
        return None
    series = _retained_series(retained)
    return classify(series.x, series.y, steady_start(series.x, series.y)[0])


def _retained_series(retained: Sequence[RetainedPoint]) -> _Series:
    return _series([p.requests for p in retained], [p.heap for p in retained], 0)


def steady_retained(curve: Curve, steady: SteadyState) -> int | None:
    """The first retained point of the steady state, for the sites' growth: the analysis's
    own cut when it judged the heap on them, else the first at or after the steady state's
    start, if at least ``MIN_RETAINED`` follow it (``None``: too few, judge every point).

    Sites are judged on the retained heap whenever it has enough points, whatever the heap
    was judged on: a site whose bytes are garbage waiting for a collection is not growing
    (a clean Django app's template rendering grew 103 B/request [17, 218] on every point,
    and failed the check with no history)."""
    if steady.retained_index is not None:
        return steady.retained_index
    first = next(
        (i for i, p in enumerate(curve.retained) if p.requests >= steady.requests),
        len(curve.retained),
    )
    return first if len(curve.retained) - first >= MIN_RETAINED else None


def measured_retained(curve: Curve) -> list[RetainedPoint]:
    """The curve's retained points of the measured phase (from the warm-up's point on)."""
    start = curve.points[curve.warmup_index].requests if curve.points else 0.0
    return [p for p in curve.retained if p.requests >= start]


def _series(x: Sequence[float], values: Sequence[int], offset: int) -> _Series:
    """Block medians of ``values`` over ``x``, with each block's first index (plus ``offset``)."""
    try:
        xb, yb = blocks(x, values)
    except TooFewPoints as exc:
        raise NotEnoughPoints(f"measured phase: {exc}") from None
    sizes = [len(part) for part in np.array_split(np.arange(len(x)), len(xb))]
    first = offset + np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return _Series(xb, yb, first)


def steady_growth(x: np.ndarray, y: np.ndarray) -> Trend:
    """The growth of a series already past its warm-up (``x`` requests, ``y`` bytes),
    through its steady state: block medians, where the steady state starts, the trend
    after it. :class:`TooFewPoints` when there are too few points to tell."""
    xb, yb = blocks(x, y)
    start, _ = steady_start(xb, yb)
    return trend(xb[start:], yb[start:])


def steady_start(x: np.ndarray, y: np.ndarray, min_rise: float = MIN_RISE) -> tuple[int, str]:
    """The block where the steady state starts (0: right after the warm-up), and why."""
    n = len(x)
    line_rss = lstsq_rss(np.column_stack([np.ones(n), x]), y)
    best: tuple[float, int, float] | None = None
    for k in range(1, n - MIN_BLOCKS + 1):
        design = np.column_stack(
            [np.ones(n), np.minimum(x, x[k]) - x[0], np.maximum(x - x[k], 0.0)]
        )
        coef, rss = lstsq(design, y)
        rise = coef[1] * (x[k] - x[0])
        # Warm-up ends where growth slows down for good: to a quarter at most. (A line in
        # autocorrelated noise often fits a milder "slowdown" better, by chance.)
        if coef[1] <= 0 or coef[2] > coef[1] / SLOWDOWN:
            continue
        bic = bic_of(rss, n, 3)
        if best is None or bic < best[0]:
            best = (bic, k, rise)
    if best is None:
        return 0, "no slowdown after the warm-up: the steady state starts there"
    bic, k, rise = best
    noise = robust_spread(y[k:] - np.median(y[k:]))
    gain = bic_of(line_rss, n, 2) - bic
    if gain < BIC_MARGIN or rise < max(min_rise, NOISE_FACTOR * noise):
        return 0, "no slowdown after the warm-up: the steady state starts there"
    return k, (
        f"growth slowed down after {x[k]:,.0f} requests (a rise of {rise:,.0f} bytes"
        f" before it); the steady state starts there"
    )


def classify(x: np.ndarray, y: np.ndarray, cut: int, min_rise: float = MIN_RISE) -> CurveShape:
    """The shape of block medians ``y`` over requests ``x``, steady from block ``cut``."""
    fits = model_fits(x, y)
    xs, ys = x[cut:], y[cut:]
    steady_trend = trend(xs, ys)
    noise = max(steady_trend.noise, 1.0)
    material = max(min_rise, NOISE_FACTOR * noise)
    rise = float(y[cut] - y[0]) if cut else 0.0

    jump, step_ratio, step_noise = best_step(xs, ys)
    # A jump smaller than half the rise before it is part of levelling off (a dict
    # resizing once a bounded cache is full), not a shape of its own.
    step_material = max(min_rise, NOISE_FACTOR * step_noise, rise / 2)
    if abs(jump) > step_material and len(xs) > MIN_BLOCKS:
        # (With the fewest blocks there are none to spare for leaving the jump's out.)
        # A leak may also jump once (a buffer resized on the way): fit the jump together
        # with a slope, and judge the growth with the jump taken out.
        height, at, ratio = jump_beside_a_slope(xs, ys)
        # The block the jump falls in holds a bit of both levels: leave it out.
        keep = np.arange(len(ys)) != at
        besides = trend(xs[keep], (ys - height * (np.arange(len(ys)) >= at))[keep])
        material_besides = max(min_rise, NOISE_FACTOR * max(besides.noise, 1.0))
        if ratio <= STEP_FIT_RATIO and is_growing(besides, material_besides):
            return CurveShape(
                Shape.LEAK,
                besides,
                rise,
                fits,
                f"grows {besides.slope:,.1f} bytes per request"
                f" [{besides.low:,.1f}, {besides.high:,.1f}] through the steady state besides"
                f" one jump of {height:,.0f} bytes (trend p = {besides.p_value:.2g})",
            )
    if jump > step_material and step_ratio <= STEP_FIT_RATIO:
        return CurveShape(
            Shape.STEP,
            steady_trend,
            rise,
            fits,
            f"one jump of {jump:,.0f} bytes explains the steady state better than a line",
        )
    if -jump > step_material and step_ratio <= STEP_FIT_RATIO and rise <= material:
        # Memory given back once (a cache cleared, a pool shrunk) is no step up.
        return CurveShape(
            Shape.FLAT,
            steady_trend,
            rise,
            fits,
            f"dropped {-jump:,.0f} bytes at once (memory given back), and grew at no other time",
        )
    if is_growing(steady_trend, material):
        return CurveShape(
            Shape.LEAK,
            steady_trend,
            rise,
            fits,
            f"grows {steady_trend.slope:,.1f} bytes per request"
            f" [{steady_trend.low:,.1f}, {steady_trend.high:,.1f}] through the steady state"
            f" (trend p = {steady_trend.p_value:.2g})",
        )
    if rise > material:
        by_name = {fit.model: fit.rms for fit in fits}
        if by_name["step"] < by_name["plateau"]:
            return CurveShape(
                Shape.STEP,
                steady_trend,
                rise,
                fits,
                f"jumped {rise:,.0f} bytes at once, then stayed flat",
            )
        return CurveShape(
            Shape.PLATEAU,
            steady_trend,
            rise,
            fits,
            f"rose {rise:,.0f} bytes, then levelled off"
            f" ({steady_trend.slope:,.1f} bytes per request since)",
        )
    return CurveShape(
        Shape.FLAT,
        steady_trend,
        rise,
        fits,
        f"no material growth ({steady_trend.slope:,.1f} bytes per request"
        f" [{steady_trend.low:,.1f}, {steady_trend.high:,.1f}], p = {steady_trend.p_value:.2g})",
    )


def is_growing(t: Trend, material: float) -> bool:
    """Surely (the trend test and the interval) and materially (rate and total) growing."""
    return t.p_value < ALPHA and t.low > 0 and t.slope >= MIN_SLOPE and t.growth > material
