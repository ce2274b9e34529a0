"""``capture = "auto"``: when a counted run decides alone, and what the results say."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gate.model import RetainedPoint, RunResult, ScenarioRef
from gate.run.auto import CONCLUSIVE_BELOW, decided, undecided, with_counted_first
from tests.support.values import make_result


def counted(growth: float, noise: float = 0.0, points: int = 16, leak: int = 0) -> RunResult:
    """A counted run whose heap right after full collections grows ``growth`` B/request,
    with ``noise`` bytes of wander (seeded)."""
    result = make_result(leak)
    wander = np.random.default_rng(7).normal(0, noise, points) if noise else np.zeros(points)
    served = np.linspace(250, 1000, points)
    retained = tuple(
        RetainedPoint(
            requests=float(r),
            t=float(r) / 100,
            heap=round(5_000_000 + growth * (r - 200) + w),
            pause=0.01,
            forced=True,
        )
        for r, w in zip(served, wander, strict=True)
    )
    curve = dataclasses.replace(result.curve, retained=retained)
    return dataclasses.replace(result, curve=curve)


def test_a_flat_counted_heap_decides_alone() -> None:
    assert undecided(counted(0.0, noise=300)) is None


def test_growth_that_may_reach_the_bar_is_traced() -> None:
    why = undecided(counted(CONCLUSIVE_BELOW))
    assert why is not None and "not ruled out" in why


def test_a_heap_too_noisy_to_rule_out_growth_is_traced() -> None:
    """The noisy service: its heap wanders by tens of KiB, the interval is wide."""
    why = undecided(counted(0.0, noise=40_000))
    assert why is not None and "not ruled out" in why, why


def test_too_few_full_collections_are_traced() -> None:
    why = undecided(counted(0.0, points=5))
    assert why is not None and "too few full collections" in why


def test_a_leaking_shape_is_traced_whatever_the_retained_heap() -> None:
    why = undecided(counted(0.0, leak=100))
    assert why == "its shape is leak"


@pytest.mark.parametrize(("service", "prefix"), [(None, "counted/"), ("api", "../counted/api/")])
def test_a_decided_runs_files_point_into_counted(service: str | None, prefix: str) -> None:
    result = counted(0.0)
    result = dataclasses.replace(
        result,
        scenario=dataclasses.replace(result.scenario, service=service),
        files={"service_log": "service.log", "load_log": "../load.log" if service else "load.log"},
    )
    files = decided(result).files
    assert files["service_log"] == prefix + "service.log"
    assert files["load_log"] == prefix + ("../load.log" if service else "load.log")


def test_a_traced_run_says_which_counted_run_came_first_and_why() -> None:
    first = counted(40.0)
    traced = make_result(40)
    (named,) = with_counted_first([traced], [first], {None: undecided(first)})
    note = named.capture.counted_first
    assert note is not None and note.folder == "counted"
    assert note.requests == first.load.measured_requests and "not ruled out" in note.why


def test_a_service_with_no_counted_run_is_left_as_it_is() -> None:
    traced = make_result(40)
    other = dataclasses.replace(
        counted(40.0), scenario=ScenarioRef(name="demo", path="x", sha256="0" * 64, service="db")
    )
    (same,) = with_counted_first([traced], [other], {"db": undecided(other)})
    assert same.capture.counted_first is None
