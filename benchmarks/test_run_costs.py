"""What a run costs: service throughput with and without memray, capture size, read time.

    .venv/bin/pytest benchmarks/test_run_costs.py

Each profiling mode serves the demo scenario's load for ``MEMGATE_BENCH_SECONDS``
(default 8) measured seconds after a 300-request warm-up, ``MEMGATE_BENCH_ROUNDS``
rounds (default 3), modes interleaved so that the machine's drift hits them alike;
figures are medians. Reading is timed on the last Python-allocator capture, next to
``memray stats`` on the same file.
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

from gate.capture import Capture
from gate.load import LoadConfig, LoadProcess
from gate.scenario import ProfileSpec, Scenario, load_scenario
from gate.service import ServiceProcess, free_port

REPO = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("MEMGATE_BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("MEMGATE_BENCH_ROUNDS", "3"))
MODES = {
    "unprofiled": None,
    "default (python allocators)": ProfileSpec(),
    "native": ProfileSpec(native=True),
}


def serve_once(scenario: Scenario, out: Path, profile: ProfileSpec | None) -> tuple[float, int]:
    """Requests per second of the measured phase, and the capture's size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    if profile is not None:
        scenario = scenario.model_copy(update={"profile": profile})
    port = free_port()
    service = ServiceProcess(scenario, port, out, profiled=profile is not None)
    service.start()
    try:
        service.wait_healthy()
        load = LoadProcess(
            LoadConfig(
                locustfile=str(scenario.locustfile),
                user_classes=[],
                host=f"http://127.0.0.1:{port}",
                users=scenario.load.users,
                spawn_rate=scenario.load.spawn_rate,
                warmup_requests=300,
                requests=None,
                duration=SECONDS,
                time_limit=SECONDS + 60,
                timeline_path=str(out / "load.jsonl"),
            ),
            out / "load.log",
        )
        load.start()
        outcome = load.outcome()
    finally:
        service.stop()
    assert outcome.warmup_done_at is not None
    warm = next(s for s in outcome.samples if s.t >= outcome.warmup_done_at)
    served = outcome.samples[-1].requests - warm.requests
    rps = served / (outcome.ended_at - warm.t)
    size = service.capture_path.stat().st_size if profile is not None else 0
    return rps, size


@dataclasses.dataclass(frozen=True)
class Throughput:
    runs: dict[str, list[tuple[float, int]]]
    """Per mode, (requests per second, capture bytes) of each round."""
    capture: Path
    """The last capture made in the default mode."""


@pytest.fixture(scope="module")
def throughput(tmp_path_factory: pytest.TempPathFactory) -> Throughput:
    scenario = load_scenario(REPO / "scenarios" / "demo.toml")
    runs: dict[str, list[tuple[float, int]]] = {mode: [] for mode in MODES}
    capture = Path()
    for round_ in range(ROUNDS):
        for mode, profile in MODES.items():
            out = tmp_path_factory.mktemp(f"round{round_}")
            runs[mode].append(serve_once(scenario, out, profile))
            if profile == ProfileSpec():
                capture = out / "capture.bin"
    return Throughput(runs, capture)


def test_profiling_overhead(throughput: Throughput, figure) -> None:
    plain = statistics.median(rps for rps, _ in throughput.runs["unprofiled"])
    figure("throughput unprofiled", f"{plain:,.0f} req/s (median of {ROUNDS})")
    for mode in list(MODES)[1:]:
        rps = statistics.median(r for r, _ in throughput.runs[mode])
        mb_per_s = statistics.median(size for _, size in throughput.runs[mode]) / 2**20 / SECONDS
        figure(
            f"throughput {mode}",
            f"{rps:,.0f} req/s = {rps / plain:.2f} x unprofiled;"
            f" capture about {mb_per_s:.1f} MiB per measured second",
        )
    assert plain > 0


def read_capture(path: Path) -> int:
    """What ``memgate run`` does with a capture: snapshots, then live bytes per stack."""
    with Capture(path) as capture:
        snapshots = capture.snapshots()
        step = max(len(snapshots) // 200, 1)
        indexes = list(range(0, len(snapshots), step))
        return sum(1 for _ in capture.live_bytes_by_stack(indexes))


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
