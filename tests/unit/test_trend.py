"""Growth estimates: exact on clean lines, honest intervals on autocorrelated noise."""

from __future__ import annotations

import numpy as np
import pymannkendall
import pytest
from scipy import stats

from gate.analysis.trend import TooFewPoints, blocks, trend
from tests.support import ar1


def test_blocks_are_medians_of_contiguous_groups() -> None:
    xb, yb = blocks(np.arange(90), np.arange(90) * 2.0)
    assert len(xb) == 30
    assert xb[:3].tolist() == [1.0, 4.0, 7.0]
    assert yb[:3].tolist() == [2.0, 8.0, 14.0]
    with pytest.raises(TooFewPoints):
        blocks(np.arange(5), np.arange(5))


def test_a_clean_line() -> None:
    xb = np.linspace(0, 1000, 30)
    t = trend(xb, 5000 + 12.5 * xb)
    assert t.slope == 12.5
    assert t.low == t.high == 12.5
    assert t.tau == 1.0 and t.p_value < 1e-6
    assert t.growth == 12500.0


def test_a_constant_series_has_no_trend() -> None:
    t = trend(np.linspace(0, 1000, 30), np.full(30, 7.0))
    assert (t.slope, t.p_value, t.tau) == (0.0, 1.0, 0.0)


def test_interval_stays_honest_under_autocorrelation() -> None:
    """With AR(1) noise (phi 0.95 between points), the 95% interval on block medians
    still covers the true slope most of the time; Theil-Sen on the raw points, which
    takes them as independent, does not."""
    rng = np.random.default_rng(7)
    x = np.linspace(0, 10_000, 200)
    covered = naive_covered = 0
    runs = 100
    for _ in range(runs):
        y = 3.0 * x + ar1(len(x), 8_000, 0.95, rng)
        t = trend(*blocks(x, y))
        covered += t.low <= 3.0 <= t.high
        naive = stats.theilslopes(y, x, alpha=0.95)
        naive_covered += naive.low_slope <= 3.0 <= naive.high_slope
    assert covered / runs >= 0.8
    assert naive_covered / runs < covered / runs - 0.2


def test_negative_autocorrelation_does_not_make_the_test_overconfident() -> None:
    xb = np.arange(30.0)
    yb = 0.5 * xb + np.where(np.arange(30) % 2 == 0, 10.0, -10.0)
    uncorrected = pymannkendall.original_test(yb).p
    assert trend(xb, yb).p_value >= uncorrected > 0


def test_block_medians_are_those_of_numpys_split() -> None:
    rng = np.random.default_rng(7)
    for n in (18, 19, 20, 47, 200, 401):
        values = rng.normal(size=n)
        for count in (6, 7, 30):
            if n // count < 1:
                continue
            _, got = blocks(np.arange(n), values, max_blocks=count)
            expected = [np.median(part) for part in np.array_split(values, len(got))]
            assert np.array_equal(got, expected), (n, count)
