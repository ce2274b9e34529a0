"""Shapes from hand-made curves: white and autocorrelated noise, each shape once."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np
import pytest

from gate.analysis.shape import analyse_curve, classify
from gate.model import Curve, CurvePoint, RetainedPoint
from gate.shapes import Shape
from tests.support import (
    BASE_HEAP,
    BASE_RSS,
    FLAT,
    LEAK_64,
    PLATEAU,
    RSS_GROWTH,
    STEP,
    TOTAL,
    WARMUP,
    after_warmup,
    curve,
)


@pytest.mark.parametrize("phi", [0.0, 0.9])
@pytest.mark.parametrize(
    ("heap", "rss", "expected"),
    [
        (FLAT, FLAT, Shape.FLAT),
        (LEAK_64, LEAK_64, Shape.LEAK),
        (PLATEAU, PLATEAU, Shape.PLATEAU),
        (STEP, STEP, Shape.STEP),
        (FLAT, RSS_GROWTH, Shape.FRAGMENTATION),
    ],
    ids=["flat", "leak", "plateau", "step", "fragmentation"],
)
def test_each_shape_in_white_and_autocorrelated_noise(heap, rss, expected, phi) -> None:
    for seed in range(5):
        analysis = analyse_curve(curve(heap, rss, phi=phi, seed=seed))
        assert analysis.shape is expected, (seed, analysis.heap.reason, analysis.rss.reason)


def test_leak_slope_interval_contains_the_planted_rate() -> None:
    analysis = analyse_curve(curve(LEAK_64, phi=0.9, seed=3))
    trend = analysis.heap.trend
    assert trend.low <= 64 <= trend.high
    assert trend.p_value < 0.01
    assert re.match(r"grows 6\d\.\d bytes per request \[", analysis.heap.reason)


def test_plateau_moves_the_steady_state_to_where_growth_stops() -> None:
    analysis = analyse_curve(curve(PLATEAU, seed=1))
    assert 2500 <= analysis.steady.requests - WARMUP <= 4500
    assert "slowed down" in analysis.steady.reason
    assert analysis.heap.rise_before_steady == pytest.approx(1.5e6, rel=0.1)
    fits = {fit.model: fit.rms for fit in analysis.heap.fits}
    assert fits["plateau"] < fits["linear"] and fits["plateau"] < fits["step"]


def test_warmup_growth_then_a_leak_is_a_leak_measured_after_the_warmup() -> None:
    imports = after_warmup(lambda r: 2e6 * (1 - np.exp(-r / 600)) + 100.0 * r)
    analysis = analyse_curve(curve(imports, seed=2))
    assert analysis.shape is Shape.LEAK
    assert analysis.steady.requests > WARMUP
    assert analysis.heap.trend.low <= 100 <= analysis.heap.trend.high


def test_no_false_leaks_in_strongly_autocorrelated_flat_noise() -> None:
    shapes = [
        analyse_curve(curve(FLAT, phi=0.95, sigma=50_000, seed=seed)).shape for seed in range(40)
    ]
    assert shapes.count(Shape.LEAK) == 0
    assert shapes.count(Shape.FLAT) >= 38


def test_a_small_leak_below_the_noise_is_still_found_over_enough_requests() -> None:
    small = after_warmup(lambda r: 16.0 * r)  # 150 KB over the run, noise 20 KB
    assert analyse_curve(curve(small, seed=4)).shape is Shape.LEAK


def test_a_leak_that_also_jumps_once_is_still_a_leak() -> None:
    jumpy = after_warmup(lambda r: 40.0 * r + 6e5 * (r >= 6500))
    for seed in range(5):
        analysis = analyse_curve(curve(jumpy, phi=0.9, seed=seed))
        assert analysis.shape is Shape.LEAK, (seed, analysis.heap.reason)
        assert "besides one jump" in analysis.heap.reason
        assert analysis.heap.trend.slope == pytest.approx(40, rel=0.15)


@pytest.mark.parametrize("phi", [0.0, 0.9])
def test_a_one_time_drop_is_memory_given_back_not_a_step(phi: float) -> None:
    drop = after_warmup(lambda r: -1e6 * (r >= 6000))
    for seed in range(5):
        analysis = analyse_curve(curve(drop, drop, phi=phi, seed=seed))
        assert analysis.shape is Shape.FLAT, (seed, analysis.heap.reason)
        assert analysis.heap.shape is Shape.FLAT
        assert analysis.heap.reason.startswith("dropped "), analysis.heap.reason


def test_a_jump_within_the_fewest_blocks_is_no_error() -> None:
    # Read live, a short load can leave just 6 blocks in the steady state: none to spare
    # for fitting a slope beside a jump with the jump's block left out.
    xs = np.arange(6, dtype=float) * 500
    ys = 6e6 + np.array([0, 0, 0, 2e6, 2e6, 2e6], dtype=float)
    assert isinstance(classify(xs, ys, 0).shape, Shape)


def sawtooth(period: float) -> Callable[[np.ndarray], np.ndarray]:
    """Garbage waiting for a full collection: 40 B/request, dropped every ``period``."""
    return after_warmup(lambda r: 40.0 * np.mod(r, period))


def with_retained(c: Curve, every: int, plus: Callable[[np.ndarray], np.ndarray]) -> Curve:
    """``c`` with a retained point at every ``every``-th point: the base heap, plus
    ``plus`` of the requests, plus a little noise (what survives a full collection)."""
    rng = np.random.default_rng(7)
    kept = tuple(
        RetainedPoint(
            requests=p.requests,
            t=p.t,
            heap=int(BASE_HEAP + plus(np.asarray([p.requests]))[0] + rng.normal(0, 3000)),
            pause=0.01,
            forced=True,
        )
        for p in c.points[::every]
    )
    return dataclasses.replace(c, retained=kept)


def test_garbage_waiting_for_a_full_collection_is_no_leak_on_the_retained_heap() -> None:
    # One drop in the whole run: the raw heap ramps like a leak.
    raw = curve(sawtooth(20_000), sigma=2_000)
    assert analyse_curve(raw).heap.shape is Shape.LEAK
    judged = analyse_curve(with_retained(raw, 10, FLAT))
    assert (judged.basis, judged.heap.shape) == ("retained", Shape.FLAT)
    assert "judged on the heap right after each of" in judged.heap.reason
    # A true leak under the sawtooth is found, at its own rate.
    leak = analyse_curve(with_retained(raw, 10, LEAK_64))
    assert leak.heap.shape is Shape.LEAK
    assert leak.heap.trend.low <= 64 <= leak.heap.trend.high


def test_too_few_full_collections_judge_every_point_and_say_so() -> None:
    raw = curve(FLAT, sigma=2_000)
    few = with_retained(raw, 50, FLAT)
    judged = analyse_curve(few)
    assert judged.basis == "heap"
    assert re.search(r"only \d full collections in the measured phase", judged.heap.reason)


def test_a_leak_on_every_point_is_confirmed_only_by_a_few_retained_points_that_grew_alike() -> None:
    raw = curve(LEAK_64, sigma=2_000)
    grew = analyse_curve(with_retained(raw, 50, LEAK_64))  # 4 points: too few to judge on
    assert (grew.basis, grew.heap.shape, grew.unconfirmed) == ("heap", Shape.LEAK, False)
    assert "the heap right after them does not refute it" in grew.heap.reason
    garbage = analyse_curve(with_retained(raw, 50, FLAT))
    assert (garbage.basis, garbage.heap.shape, garbage.unconfirmed) == ("heap", Shape.LEAK, True)
    assert "did not grow alike" in garbage.heap.reason


def test_the_retained_steady_state_starts_at_the_point_the_analysis_cut_at() -> None:
    # Retained points fall between the curve's (read apart from its polls): the steady
    # state's first curve point comes after its first retained one, which the sites and
    # the heap's ends must start from too (not from the next: one point fewer).
    raw = curve(sawtooth(20_000), sigma=2_000)
    shifted = with_retained(raw, 10, LEAK_64)
    kept = tuple(dataclasses.replace(p, requests=p.requests - 1) for p in shifted.retained)
    judged = analyse_curve(dataclasses.replace(shifted, retained=kept))
    index = judged.steady.retained_index
    assert judged.basis == "retained" and index is not None
    assert kept[index].requests < judged.steady.requests <= kept[index + 1].requests
    assert analyse_curve(raw).steady.retained_index is None


def test_rss_raised_by_the_heaps_new_peaks_is_no_fragmentation() -> None:
    """A flat heap whose rare peaks (garbage waiting for a late full collection) reach a
    new height now and then: RSS keeps what each peak reached, and grows like a leak,
    but only as far as the heap's own highest point so far. That is no fragmentation;
    RSS growing past it is."""
    rng = np.random.default_rng(4)
    n = 200
    requests = np.linspace(0, TOTAL, n)
    garbage = np.where(np.arange(n) % 10 == 9, np.linspace(1e6, 5e6, n), 0.0)
    heap = BASE_HEAP + garbage + rng.normal(0, 20_000, n)
    peaks = np.maximum.accumulate(heap) - BASE_HEAP
    for extra, expected in ((0.0, Shape.FLAT), (300.0, Shape.FRAGMENTATION)):
        rss = BASE_RSS + peaks + extra * requests + rng.normal(0, 20_000, n)
        points = tuple(
            CurvePoint(requests=float(r), t=float(r) / 1000, heap=int(h), rss=int(s))
            for r, h, s in zip(requests, heap, rss, strict=True)
        )
        warmup = int(np.searchsorted(requests, WARMUP))
        analysis = analyse_curve(Curve(points=points, warmup_requests=WARMUP, warmup_index=warmup))
        assert analysis.heap.shape is Shape.FLAT, analysis.heap.reason
        assert analysis.rss.shape is Shape.LEAK, analysis.rss.reason
        assert analysis.shape is expected, extra
