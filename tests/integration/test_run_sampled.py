"""Recording by counters and samples (``[profile] capture = "sampled"``) on real
services: nothing traced, the heap counted exactly, and the lines that grow named from
the heap sampler's estimates (``sampler/``, built into this environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.analysis.shape import MIN_RETAINED, measured_retained
from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario
from gate.shapes import Shape

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run(path: str, out: Path, **overrides: object):
    scenario = load_scenario(REPO / path).with_overrides(capture="sampled", **overrides)
    return run_scenario(scenario, out)


def test_a_planted_leak_is_named_at_its_line_and_a_clean_demo_is_flat(tmp_path: Path) -> None:
    leak = run(
        "scenarios/demo.toml", tmp_path / "leak", requests=3000, env={"DEMO_LEAK_BYTES": "256"}
    )
    assert leak.capture.mode == "sampled"
    assert leak.provenance.env_key.endswith("-agent-sampled")
    assert leak.analysis.shape is Shape.LEAK and leak.analysis.basis == "retained"
    # The heap is counted (the allocators' bytes: a 289-byte object, its chunk, the
    # list's pointer); the site is estimated from samples of one allocation in 4 KiB.
    assert 256 <= leak.analysis.heap.trend.slope <= 340, leak.analysis.heap
    top = leak.sites[0]
    assert top.user_frame is not None
    assert (Path(top.user_frame.file).name, top.user_frame.line) == ("app.py", 59)
    assert 180 <= top.trend.slope <= 360, top.trend
    assert leak.retention is not None
    kept = [r.what for r in leak.retention.retained if r.kind == "container"]
    assert any(what.endswith("_retained") for what in kept), kept

    clean = run("scenarios/demo.toml", tmp_path / "clean", requests=3000)
    assert len(measured_retained(clean.curve)) >= MIN_RETAINED, clean.curve.retained
    assert clean.analysis.shape is not Shape.LEAK, clean.analysis
    assert clean.sites, "a clean run's sites are estimated too"


def test_a_prefork_services_workers_are_sampled_each(tmp_path: Path) -> None:
    result = run("scenarios/demo-gunicorn.toml", tmp_path, requests=3000)
    assert len(result.process_curves) == 3  # master, 2 workers
    assert len(list(tmp_path.glob("samples.*.jsonl"))) == 3
    assert result.analysis.shape is not Shape.LEAK, result.analysis
    assert any(site.trend is not None for site in result.sites)
