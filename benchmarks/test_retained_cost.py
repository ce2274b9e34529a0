"""What reading the retained heap costs the service: its throughput with memgate's full
collections (``[profile] retained_heap``, the default) and without, and their pauses.

    .venv/bin/pytest benchmarks/test_retained_cost.py

Each service (the demo, the cyclic service's heap of 190,000 objects, and the Flask app
under gunicorn with 2 workers, each process collecting on its own) serves its
scenario's load, read live, for ``MEMGATE_BENCH_SECONDS`` (default 10) measured seconds
after a 300-request warm-up, ``MEMGATE_BENCH_ROUNDS`` rounds (default 3), the two modes
interleaved so that the machine's drift hits them alike; figures are medians. The
pauses are the agent's own (``full.<pid>.jsonl``): median, longest, and their share of
the load's time.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest

from benchmarks._serve import serve_once
from gate.scenario import load_scenario
from gate.service.agent_files import read_full_collections

REPO = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("MEMGATE_BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("MEMGATE_BENCH_ROUNDS", "3"))
SERVICES = {
    "demo": "scenarios/demo.toml",
    "cyclic": "scenarios/bench/cyclic.toml",
    "flask": "scenarios/frameworks/flask.toml",
}


@pytest.mark.parametrize("name", list(SERVICES))
def test_full_collections_cost(name: str, tmp_path: Path, figure) -> None:
    scenario = load_scenario(REPO / SERVICES[name]).members()[0]
    rps: dict[bool, list[float]] = {True: [], False: []}
    pauses: list[float] = []
    shares: list[float] = []
    for round_ in range(ROUNDS):
        for collect in (True, False):
            out = tmp_path / f"{round_}-{collect}"
            profile = scenario.profile.model_copy(update={"retained_heap": collect})
            rps[collect].append(serve_once(scenario, out, profile, SECONDS, collect=collect)[0])
            if collect:
                most = 0.0  # the share of the process most held
                for theirs in read_full_collections(out).values():
                    forced = [c for c in theirs if c.forced]
                    pauses += [c.pause for c in forced]
                    span = forced[-1].t - forced[0].t if len(forced) > 1 else 0.0
                    most = max(most, sum(c.pause for c in forced[1:]) / span if span else 0.0)
                shares.append(most)
    on, off = statistics.median(rps[True]), statistics.median(rps[False])
    figure(
        f"{name}: throughput, full collections",
        f"{on:,.0f} req/s against {off:,.0f} without = {on / off:.2f}x (medians of {ROUNDS})",
    )
    figure(
        f"{name}: collection pauses",
        f"median {statistics.median(pauses) * 1e3:,.1f} ms, longest {max(pauses) * 1e3:,.1f} ms,"
        f" {statistics.median(shares):.1%} of the load's time ({len(pauses)} collections)",
    )
    assert pauses and on > 0 and off > 0
