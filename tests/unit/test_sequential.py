"""The soak's sequential rule: a certain leak stops it early, a clean service almost never."""

from __future__ import annotations

import math

import pytest

from gate.analysis.sequential import ALPHA, look_at, spent
from tests.support import FLAT, LEAK_64, PLATEAU, STEP, WARMUP, curve


def looks(shape, *, seed: int, phi: float = 0.0, every: int = 20) -> list:
    """The soak's looks at a curve of ``shape``, one every ``every`` points as it grows."""
    whole = curve(shape, seed=seed, phi=phi, n=400)
    requests = [p.requests for p in whole.points]
    heap = [p.heap for p in whole.points]
    return [
        look_at(k, requests[: k * every], heap[: k * every], WARMUP)
        for k in range(1, len(requests) // every + 1)
    ]


def test_the_shares_of_the_false_alarm_budget_add_up_to_it() -> None:
    assert spent(1) > spent(2) > spent(10) > 0
    assert math.isclose(sum(spent(k) for k in range(1, 200_000)), ALPHA, rel_tol=1e-4)


def test_a_leak_is_certain_early() -> None:
    seen = looks(LEAK_64, seed=1)
    first = next(look for look in seen if look.certain)
    assert first.number <= 4, [(x.number, x.trend) for x in seen[:6]]
    assert first.trend is not None and 50 <= first.trend.slope <= 80


@pytest.mark.parametrize("shape", [FLAT, STEP], ids=["flat", "step"])
def test_clean_services_are_never_stopped(shape) -> None:
    stopped = [
        seed for seed in range(20) if any(look.certain for look in looks(shape, seed=seed, phi=0.6))
    ]
    assert not stopped


def test_too_few_points_after_the_warm_up_say_nothing_yet() -> None:
    look = look_at(1, [0, 100, 200, 300], [1, 2, 3, 4], WARMUP)
    assert look.trend is None and not look.certain


def test_a_cache_is_no_leak_once_it_has_filled() -> None:
    # While a bounded cache fills (the first 3,000 requests after the warm-up here) it
    # grows as a leak does, and a soak looking then stops as a run ending then would
    # fail; once it has levelled off, the steady state starts after it.
    for seed in range(20):
        late = [look for look in looks(PLATEAU, seed=seed, phi=0.6) if look.number >= 12]
        assert not any(look.certain for look in late), seed
