"""The real example service under the real memray, driven by real Locust on 127.0.0.1."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gate.model import RunResult
from gate.runner import run_scenario
from gate.scenario import load_scenario
from tests.conftest import DEMO_SCENARIO, planted_leak_line

pytestmark = pytest.mark.integration

REQUESTS = 3000


def run_demo(out: Path, **env: str) -> RunResult:
    scenario = load_scenario(DEMO_SCENARIO).with_overrides(env=env, requests=REQUESTS, warmup=500)
    return run_scenario(scenario, out)


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    out = tmp_path_factory.mktemp("leak")
    return run_demo(out, DEMO_LEAK_BYTES="1024"), out


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    out = tmp_path_factory.mktemp("clean")
    return run_demo(out), out


def heap_growth_per_request(result: RunResult) -> float:
    warm = result.curve.points[result.curve.warmup_index]
    end = result.curve.points[-1]
    return (end.heap - warm.heap) / (end.requests - warm.requests)


@pytest.mark.parametrize("which", ["leak_run", "clean_run"])
def test_run_invariants(which: str, request: pytest.FixtureRequest) -> None:
    result, out = request.getfixturevalue(which)
    load = result.load
    assert load.measured_requests >= REQUESTS
    assert load.warmup_requests >= 500
    assert load.failures == 0
    assert load.stop_reason == "requests"
    assert {e.name for e in load.endpoints} == {"/items/[id]", "/orders"}
    points = result.curve.points
    assert len(points) >= 20
    assert all(a.requests <= b.requests and a.t <= b.t for a, b in itertools.pairwise(points))
    assert points[-1].requests == pytest.approx(load.requests, rel=0.02)
    assert all(p.heap > 0 and p.rss > p.heap for p in points[result.curve.warmup_index :])
    assert result.processes and all(s.fds > 0 and s.threads >= 1 for s in result.processes)
    assert result.timeline[0].requests == 0
    assert result.timeline[-1].requests == load.requests
    assert (out / "capture.bin").stat().st_size == result.capture.bytes > 0
    assert (out / "service.log").is_file()
    for site in result.sites:
        assert len(site.series) == len(points)
        assert site.series[-1] == site.live_bytes_end


def test_planted_leak_grows_heap_and_is_the_top_site(leak_run: tuple[RunResult, Path]) -> None:
    result, _ = leak_run
    assert 512 <= heap_growth_per_request(result) <= 2048
    top = result.sites[0]
    assert top.user_frame is not None
    assert (top.user_frame.file, top.user_frame.line) == (
        "examples/demo_service/app.py",
        planted_leak_line(),
    )
    assert 512 <= top.growth_per_request <= 2048


def test_clean_service_heap_stays_flat(clean_run: tuple[RunResult, Path]) -> None:
    result, _ = clean_run
    assert abs(heap_growth_per_request(result)) < 32
    assert all(site.growth_per_request < 32 for site in result.sites)
