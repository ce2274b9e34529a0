"""What a run costs: service throughput with and without memray, capture size, read time.

    .venv/bin/pytest benchmarks/test_run_costs.py

Each of memray's modes (each to a capture file, and Python allocators and native read
live; ``benchmarks/test_overhead.py`` has the sampled default) serves the demo
scenario's load for ``MEMGATE_BENCH_SECONDS`` (default 8) measured seconds after a
300-request warm-up, ``MEMGATE_BENCH_ROUNDS`` rounds (default 3), modes interleaved so
that the machine's drift hits them alike; figures are medians. Reading is timed on the
last Python-allocator capture, next to ``memray stats`` on the same file.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks._serve import read_capture, serve_once
from gate.scenario import ProfileSpec, load_scenario

REPO = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("MEMGATE_BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("MEMGATE_BENCH_ROUNDS", "3"))
MODES = {
    "unprofiled": None,
    "memray, python allocators traced, to a file": ProfileSpec(capture="file"),
    "memray's own default (arenas only)": ProfileSpec(
        trace_python_allocators=False, capture="file"
    ),
    "native": ProfileSpec(native=True, capture="file"),
    "memray, python allocators traced, read live": ProfileSpec(capture="live"),
    "native, read live": ProfileSpec(native=True),
}


@dataclasses.dataclass(frozen=True)
class Throughput:
    runs: dict[str, list[tuple[float, int]]]
    """Per mode, (requests per second, capture bytes) of each round."""
    capture: Path
    """The last capture made in the default mode."""


@pytest.fixture(scope="module")
def throughput(tmp_path_factory: pytest.TempPathFactory) -> Throughput:
    scenario = load_scenario(REPO / "scenarios" / "demo.toml").members()[0]
    runs: dict[str, list[tuple[float, int]]] = {mode: [] for mode in MODES}
    capture = Path()
    for round_ in range(ROUNDS):
        for mode, profile in MODES.items():
            out = tmp_path_factory.mktemp(f"round{round_}")
            runs[mode].append(serve_once(scenario, out, profile, SECONDS))
            if profile == ProfileSpec(capture="file"):
                capture = out / "capture.bin"
    return Throughput(runs, capture)


def test_profiling_overhead(throughput: Throughput, figure) -> None:
    plain = statistics.median(rps for rps, _ in throughput.runs["unprofiled"])
    figure("throughput unprofiled", f"{plain:,.0f} req/s (median of {ROUNDS})")
    for mode in list(MODES)[1:]:
        rps = statistics.median(r for r, _ in throughput.runs[mode])
        mb_per_s = statistics.median(size for _, size in throughput.runs[mode]) / 2**20 / SECONDS
        written = f"; capture about {mb_per_s:.1f} MiB per measured second" if mb_per_s else ""
        figure(f"throughput {mode}", f"{rps:,.0f} req/s = {rps / plain:.2f} x unprofiled{written}")
    assert plain > 0


def test_read_capture(benchmark, throughput: Throughput, figure) -> None:
    path = throughput.capture
    stacks = benchmark.pedantic(read_capture, args=(path,), rounds=ROUNDS, iterations=1)
    assert stacks > 0
    memgate_s = benchmark.stats.stats.median
    stats_s = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "memray",
                "stats",
                "--json",
                "-f",
                "-o",
                str(path.with_suffix(".stats.json")),
                str(path),
            ],
            check=True,
            capture_output=True,
        )
        stats_s.append(time.perf_counter() - started)
    size_mb = path.stat().st_size / 2**20
    figure(
        "capture read",
        f"{size_mb:.0f} MiB: memgate {memgate_s:.1f} s ({memgate_s / size_mb * 100:.1f} s per"
        f" 100 MiB), memray stats {statistics.median(stats_s):.1f} s;"
        f" ratio {memgate_s / statistics.median(stats_s):.2f}",
    )
