"""Recording by counters (``[profile] capture = "counters"``) on real services: nothing
traced, the heap read from the allocators' own counters right after full collections.
A clean demo does not leak, a planted leak does and the census names its container, a
prefork service's workers are summed (a service that exec's away from the agent:
``test_run_changes_under_gate.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.analysis.shape import MIN_RETAINED, measured_retained
from gate.outcome import Outcome
from gate.run.orchestrate import run_scenario
from gate.scenario import BudgetSpec, load_scenario
from gate.shapes import Shape
from gate.summary import summarize
from gate.verdict import decide

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run(path: str, out: Path, **overrides: object):
    scenario = load_scenario(REPO / path).with_overrides(capture="counters", **overrides)
    return run_scenario(scenario, out)


def test_a_clean_demo_is_flat_and_a_planted_leak_is_found_and_kept(tmp_path: Path) -> None:
    clean = run("scenarios/demo.toml", tmp_path / "clean", requests=3000)
    assert clean.capture.mode == "counters" and clean.sites == ()
    assert clean.provenance.env_key.endswith("-agent-counters")
    # A counted demo serves 3,000 requests in 1.5 s: the load runs on until enough
    # points right after full collections are read to judge the heap on them.
    assert clean.load.measured_requests > 3000
    assert len(measured_retained(clean.curve)) >= MIN_RETAINED, clean.curve.retained
    assert clean.analysis.shape is not Shape.LEAK, clean.analysis
    leak = run(
        "scenarios/demo.toml", tmp_path / "leak", requests=3000, env={"DEMO_LEAK_BYTES": "256"}
    )
    assert leak.analysis.shape is Shape.LEAK and leak.analysis.basis == "retained"
    # The allocators' own bytes: a 256-byte payload is a 289-byte object in malloc's chunk
    # of 304 (over pymalloc's 512 bytes it is not), and the list's pointer.
    assert 256 <= leak.analysis.heap.trend.slope <= 340, leak.analysis.heap
    assert leak.retention is not None
    kept = [r.what for r in leak.retention.retained if r.kind == "container"]
    assert any(what.endswith("_retained") for what in kept), kept


def test_a_prefork_services_workers_are_counted_and_summed(tmp_path: Path) -> None:
    # The load waits for 16 summed points right after full collections, or stops at 5
    # times its requests: 15,000 gave 5-7 measured points when the machine was slow.
    result = run("scenarios/demo-gunicorn.toml", tmp_path, requests=6000)
    assert len(result.process_curves) == 3  # master, 2 workers
    assert result.capture.forks == 2
    assert len(measured_retained(result.curve)) >= MIN_RETAINED, result.curve.retained
    assert result.analysis.shape is not Shape.LEAK, result.analysis


def test_auto_traces_a_run_whose_counted_heap_grew_and_judges_that(tmp_path: Path) -> None:
    """``capture = "auto"``: the counted run did not rule out growth, so the load ran
    again traced; that run is judged, and names the planted line."""
    leak = run_auto(tmp_path, env={"DEMO_LEAK_BYTES": "256"})
    assert leak.capture.mode == "live" and leak.analysis.shape is Shape.LEAK
    first = leak.capture.counted_first
    assert first is not None and first.folder == "counted", leak.capture
    assert "not ruled out" in first.why or "shape is leak" in first.why, first.why
    assert (tmp_path / "counted" / "service.log").exists()
    assert (tmp_path / "service.log").exists()  # the traced run's, where it is judged
    top = leak.sites[0].frame
    assert top is not None and top.file.endswith("demo_service/app.py"), leak.sites[0]
    decision = decide(summarize(leak), None, BudgetSpec())
    assert decision.verdict is Outcome.FAIL, decision.findings


def test_auto_decides_alone_when_the_counted_heap_rules_out_growth(tmp_path: Path) -> None:
    # Ruling growth out takes enough points right after full collections: the load stops
    # at 5 times its requests, and 15,000 were once too few in CI (as in the prefork test).
    clean = run_auto(tmp_path, requests=6000)
    assert clean.capture.mode == "counters" and clean.capture.counted_first is None
    assert clean.analysis.shape is not Shape.LEAK, clean.analysis
    # Its files stay in counted/, where the result's references point.
    assert clean.files["service_log"] == "counted/service.log"
    assert (tmp_path / clean.files["service_log"]).exists()
    assert not (tmp_path / "service.log").exists()


def run_auto(out: Path, requests: int = 3000, **overrides: object):
    scenario = load_scenario(REPO / "scenarios/demo.toml").with_overrides(
        capture="auto", requests=requests, **overrides
    )
    return run_scenario(scenario, out)
