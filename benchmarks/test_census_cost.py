"""What the census of the garbage collector's objects costs the service, and whether it
moves the curve.

    .venv/bin/pytest benchmarks/test_census_cost.py -s

Runs the demo scenario as ``memgate run`` does (``MEMGATE_BENCH_REQUESTS`` measured
requests, default 3000), clean and with its planted 256 B/request leak, each with
``[profile] census = true`` (the default) and ``false``, ``MEMGATE_BENCH_ROUNDS`` rounds
(default 3) with the four interleaved. Prints, as medians: each census's pause and the
objects it counted, the throughput of the measured phase, the heap's growth per request
(the census must not move it: its pause and its objects are in no point), and the time
from the load's end to the result.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest

from gate.model import RunResult
from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("MEMGATE_BENCH_ROUNDS", "3"))
REQUESTS = int(os.environ.get("MEMGATE_BENCH_REQUESTS", "3000"))
CASES = {"clean": {}, "leak256": {"DEMO_LEAK_BYTES": "256"}}


def _scenario(folder: Path, census: bool) -> Path:
    """The demo scenario with ``census`` set, written into ``folder`` (its paths made
    absolute, since they are relative to the scenario's own folder)."""
    text = (REPO / "scenarios" / "demo.toml").read_text()
    text = text.replace('cwd = ".."', f'cwd = "{REPO}"').replace(
        '"../examples', f'"{REPO}/examples'
    )
    assert text.rstrip().splitlines()[-2] == "[profile]", "[profile] must be the last table"
    path = folder / f"demo-census-{str(census).lower()}.toml"
    path.write_text(text + f"census = {str(census).lower()}\n")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], list[RunResult]]:
    folder = tmp_path_factory.mktemp("scenarios")
    files = {census: _scenario(folder, census) for census in (True, False)}
    out: dict[tuple[str, bool], list[RunResult]] = {}
    for round_ in range(ROUNDS):
        for case, env in CASES.items():
            for census, path in files.items():
                scenario = load_scenario(path).with_overrides(env=env, requests=REQUESTS)
                where = tmp_path_factory.mktemp(f"{case}-{census}-{round_}")
                out.setdefault((case, census), []).append(run_scenario(scenario, where))
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values)


def test_census_pause_and_its_effect_on_the_run(runs, figure) -> None:
    for case in CASES:
        on, off = runs[(case, True)], runs[(case, False)]
        for label in ("start", "end"):
            taken = [c for r in on if r.retention for c in r.retention.censuses if c.label == label]
            assert len(taken) == ROUNDS, f"{case}: a {label} census is missing"
            pauses = [c.seconds for c in taken]
            figure(
                f"census {case} {label}",
                f"paused {_median(pauses):.3f} s for"
                f" {_median([c.objects for c in taken]):,.0f} objects"
                f" (range {min(pauses):.3f}-{max(pauses):.3f} s)",
            )
        for name, pick, unit in (
            ("throughput", lambda r: r.load.requests_per_second, "req/s"),
            ("heap slope", lambda r: r.analysis.heap.trend.slope, "B/request"),
            ("result after the load", lambda r: r.capture.read_seconds, "s"),
        ):
            with_census, without = _median([pick(r) for r in on]), _median([pick(r) for r in off])
            figure(
                f"{name} {case}",
                f"census on {with_census:,.2f} {unit}, off {without:,.2f} {unit}",
            )
    leaks = runs[("leak256", True)]
    assert all(
        r.retention and r.retention.retained and "_retained" in r.retention.retained[0].what
        for r in leaks
    )
    assert all(r.retention is None for r in runs[("clean", False)])
