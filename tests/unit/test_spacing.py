"""gate.spacing: which samples of a long stream are kept."""

from __future__ import annotations

import pytest

from gate.spacing import Spacing


def kept_times(spacing: Spacing, seconds: float, every: float) -> list[float]:
    steps = round(seconds / every)
    return [round(i * every, 6) for i in range(steps + 1) if spacing.keep(i * every)]


def test_the_first_samples_are_all_kept_then_the_spacing_doubles() -> None:
    kept = kept_times(Spacing(0.1, per_doubling=4), seconds=2.0, every=0.1)
    assert kept == [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.1, 1.5, 1.9]
    # The spacing doubles after each four kept: 0.1, then 0.2, then 0.4 s.


def test_an_hour_keeps_a_few_thousand_and_ten_hours_not_ten_times_as_many() -> None:
    hour = len(kept_times(Spacing(0.1), seconds=3600, every=0.1))
    ten = len(kept_times(Spacing(0.1), seconds=36000, every=0.1))
    assert 5000 <= hour <= 5600
    assert ten < 2 * hour


def test_a_sampler_a_little_late_loses_no_sample_and_times_need_not_be_round() -> None:
    spacing = Spacing(0.1, per_doubling=1000)
    times = [i * 0.1 + (0.004 if i % 2 else 0.0) for i in range(100)]
    assert all(spacing.keep(t) for t in times)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Spacing(0.0)
    with pytest.raises(ValueError):
        Spacing(0.1, per_doubling=0)
