"""The real example service under the real memray, driven by real Locust on 127.0.0.1."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gate.model import RunResult
from gate.recording.live.process import RELIEF_MOST_S
from gate.recording.live.recorder import LATE_S as LIVE_LATE_S
from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario
from gate.shapes import Shape
from tests.support import DEMO_SCENARIO, planted_leak_line

pytestmark = pytest.mark.integration

REQUESTS = 4000
SECRET = "ghp_" + "s3cr3t" * 6
"""A token given to the clean run's service with --env: no file of the run may hold it."""


def run_demo(out: Path, requests: int = REQUESTS, **env: str) -> RunResult:
    """The demo read live from memray (``capture = "live"``; the default, sampled, is
    ``test_run_sampled.py``'s)."""
    scenario = load_scenario(DEMO_SCENARIO).with_overrides(
        env=env, requests=requests, warmup=500, capture="live"
    )
    return run_scenario(scenario, out)


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    out = tmp_path_factory.mktemp("leak")
    return run_demo(out, DEMO_LEAK_BYTES="256"), out


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    out = tmp_path_factory.mktemp("clean")
    return run_demo(out, API_TOKEN=SECRET), out


@pytest.fixture(scope="module")
def unbounded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    out = tmp_path_factory.mktemp("unbounded")
    return run_demo(out, DEMO_CACHE="unbounded"), out


@pytest.fixture(scope="module")
def lru_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    out = tmp_path_factory.mktemp("lru")
    # The cache holds 2000 items, full after about 2500 requests; then it must level off.
    return run_demo(out, requests=8000, DEMO_CACHE="lru"), out


@pytest.mark.parametrize("which", ["leak_run", "clean_run", "lru_run"])
def test_run_invariants(which: str, request: pytest.FixtureRequest) -> None:
    result, out = request.getfixturevalue(which)
    load = result.load
    assert load.measured_requests >= REQUESTS
    assert load.warmup_requests >= 500
    assert load.failures == 0
    assert load.stop_reason == "requests"
    assert {e.name for e in load.endpoints} == {"/items/[id]", "/orders"}
    points = result.curve.points
    # A point per poll of the live stream (every 0.1 s) over a few seconds of load: 18
    # when two suites shared the 2 cores, 30 or more alone.
    assert len(points) >= 12
    assert all(a.requests <= b.requests and a.t <= b.t for a, b in itertools.pairwise(points))
    # The last point is the last poll before the users were told to stop: at most the
    # lateness a slow poll is allowed (and the pause it earns) before the end.
    assert points[-1].t <= load.duration_s <= points[-1].t + LIVE_LATE_S + RELIEF_MOST_S
    assert points[-1].requests > 0.9 * load.requests
    assert all(p.heap > 0 and p.rss > p.heap for p in points[result.curve.warmup_index :])
    assert result.processes
    assert all(s.fds > 0 and s.threads >= 1 and 0 < s.rss_anon < s.rss for s in result.processes)
    assert result.timeline[0].requests == 0
    assert result.timeline[-1].requests == load.requests
    # Read live: no capture file, the points kept are those read.
    assert result.capture.mode == "live" and result.capture.bytes == 0
    assert not list(out.glob("capture.bin*")) and result.capture.polls >= result.capture.snapshots
    assert (out / "service.log").is_file()
    assert result.curve.warmup_index <= result.analysis.steady.index < len(points)
    for site in result.sites:
        assert len(site.series) == len(points)
        assert site.series[-1] == site.live_bytes_end
        assert 0 <= site.confidence <= 1


def test_planted_leak_is_a_leak_at_its_rate_on_its_line(leak_run) -> None:
    result, _ = leak_run
    analysis = result.analysis
    assert analysis.shape is Shape.LEAK, analysis.heap.reason
    trend = analysis.heap.trend
    assert trend.low <= 512 and trend.high >= 128  # the interval reaches within 2x of 256
    top = result.sites[0]
    assert top.user_frame is not None
    assert (top.user_frame.file, top.user_frame.line) == (
        "examples/demo_service/app.py",
        planted_leak_line(),
    )
    assert 128 <= top.growth_per_request <= 512
    assert top.confidence > 0.9
    # What keeps it: the module's list, one item per request (one in 256 bytes).
    assert result.retention is not None
    kept = result.retention.retained[0]
    assert (kept.kind, kept.what, kept.type) == (
        "container",
        "examples.demo_service.app._retained",
        "list",
    )
    assert kept.per_request == pytest.approx(1.0, rel=0.05)
    assert [c.label for c in result.retention.censuses] == ["start", "end"]
    assert all(0 < c.seconds < 10 and c.objects > 1000 for c in result.retention.censuses)


def test_an_unbounded_cache_is_named_by_its_dict(unbounded_run) -> None:
    result, _ = unbounded_run
    assert result.analysis.shape is Shape.LEAK, result.analysis.heap.reason
    assert result.retention is not None
    kept = result.retention.retained[0]
    assert (kept.what, kept.type) == (
        "examples.demo_service.app._cache._entries",
        "collections.OrderedDict",
    )
    assert kept.per_request == pytest.approx(0.8, rel=0.1)  # 4 requests in 5 view a new item


def test_an_environment_value_reaches_no_file_of_the_run(clean_run) -> None:
    result, out = clean_run
    # It was written verbatim into result.json, which the Action uploads.
    assert result.settings["service"]["env"]["API_TOKEN"].startswith("sha256:")
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and not [p for p in written if SECRET.encode() in p.read_bytes()]


def test_clean_service_is_flat(clean_run) -> None:
    result, _ = clean_run
    assert result.analysis.shape is Shape.FLAT, (
        result.analysis.heap.reason,
        result.analysis.rss.reason,
    )
    assert abs(result.analysis.heap.trend.slope) < 16
    assert not [s for s in result.sites if s.growth_per_request > 16 and s.confidence > 0.9]
    assert result.retention is not None
    assert not [r for r in result.retention.retained if r.per_request >= 0.1], result.retention


def test_bounded_cache_is_a_plateau(lru_run) -> None:
    result, _ = lru_run
    analysis = result.analysis
    assert analysis.shape is Shape.PLATEAU, (analysis.heap.reason, analysis.rss.reason)
    assert analysis.heap.rise_before_steady > 256 * 1024
    assert analysis.steady.requests > 1500


def test_a_real_result_is_valid_by_the_published_json_schema(leak_run) -> None:
    import json

    import jsonschema

    from gate.result import write_result
    from tests.support import REPO

    result, out = leak_run
    write_result(result, out / "result.json")  # as memgate run writes it
    schema = json.loads((REPO / "docs" / "result.schema.json").read_text())
    jsonschema.validate(json.loads((out / "result.json").read_text()), schema)
