"""What watching costs the service: its throughput under each way of recording, as a ratio
to its unprofiled throughput measured in the same rounds.

    PATH="$PWD/.venv/bin:$PATH" .venv/bin/pytest benchmarks/test_overhead.py -s

Two services: the demo (Starlette under uvicorn, one process, 256 B/request planted as
in ``../shared/tools/overhead_peers.py``) and the Django example (two gunicorn sync
workers, templates and ORM: a heavier framework heap). Each round serves the scenario's
load to every mode in turn, for ``MEMGATE_BENCH_SECONDS`` (default 8) measured seconds
after a 300-request warm-up; ``MEMGATE_BENCH_ROUNDS`` rounds (default 3), interleaved so
that the machine's drift hits every mode alike; figures are medians. memgate's modes run
their full collections through the measured phase, as a check does
(``[profile] retained_heap``).

The modes:

- unprofiled;
- tracemalloc: ``PYTHONTRACEMALLOC=1``, CPython's exact tracer, one frame;
- memray, arenas only: memray's own default, to a file (no pymalloc block traced);
- memray, Python allocators, to a file;
- memgate live: memray's Python allocators traced and streamed (``capture = "live"``);
- memgate counters: nothing traced, the allocators' counters read (``capture =
  "counters"``);
- memgate sampled, the default: the counters, and the heap sampler's hook on the Python
  allocators (``capture = "sampled"``, one allocation in 4 KiB sampled with its stack).

``MEMGATE_BENCH_MODES=sampled,counters`` (words of the modes' names) measures those
modes only, beside the unprofiled one.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest

from benchmarks._serve import serve_once
from gate.scenario import Scenario, load_scenario

REPO = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("MEMGATE_BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("MEMGATE_BENCH_ROUNDS", "3"))
SERVICES = {
    "demo": ("scenarios/demo.toml", {"DEMO_LEAK_BYTES": "256"}),
    "django": ("scenarios/frameworks/django.toml", {}),
}
MODES: dict[str, dict[str, object] | None] = {
    "unprofiled": None,
    "tracemalloc, 1 frame": None,
    "memray, arenas only, to a file": {"capture": "file", "trace_python_allocators": False},
    "memray, Python allocators, to a file": {"capture": "file"},
    "memgate live (Python allocators)": {"capture": "live"},
    "memgate counters": {"capture": "counters"},
    "memgate sampled, the default (one allocation in 4 KiB)": {"capture": "sampled"},
}


ONLY = os.environ.get("MEMGATE_BENCH_MODES")
if ONLY:
    MODES = {
        mode: changes
        for mode, changes in MODES.items()
        if mode == "unprofiled" or any(word in mode for word in ONLY.split(","))
    }


def _serve(scenarios: dict[bool, Scenario], mode: str, out: Path) -> float:
    changes = MODES[mode]
    scenario = scenarios[mode.startswith("tracemalloc")]
    profile = None
    if changes is not None:
        profile = scenario.profile.model_copy(update={**changes, "flamegraph": False})
    rps, _ = serve_once(scenario, out, profile, SECONDS, collect=profile is not None)
    return rps


@pytest.mark.parametrize("name", list(SERVICES))
def test_throughput_by_mode(name: str, tmp_path: Path, figure) -> None:
    path, env = SERVICES[name]
    scenarios = {
        traced: load_scenario(REPO / path)
        .with_overrides(env={**env, **({"PYTHONTRACEMALLOC": "1"} if traced else {})})
        .members()[0]
        for traced in (False, True)
    }
    rps: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_ in range(ROUNDS):
        for number, mode in enumerate(MODES):
            value = _serve(scenarios, mode, tmp_path / f"r{round_}-{number}")
            rps[mode].append(value)
            print(f"{name} round {round_ + 1} {mode:40} {value:8.1f} req/s", flush=True)
    plain = statistics.median(rps["unprofiled"])
    for mode, values in rps.items():
        median = statistics.median(values)
        figure(
            f"{name}: {mode}",
            f"{median:8,.0f} req/s  {median / plain:4.2f}x unprofiled"
            f"  (median of {ROUNDS}: {', '.join(f'{v:,.0f}' for v in values)})",
        )
    assert plain > 0 and all(min(values) > 0 for values in rps.values())
