"""The live capture against the capture file, on the demo (256 B/request planted).

    .venv/bin/pytest benchmarks/test_live.py -s
    MEMGATE_BENCH_DURATIONS=10,60,300 MEMGATE_BENCH_ROUNDS=3 \
        .venv/bin/pytest benchmarks/test_live.py -s
    MEMGATE_BENCH_SOAK_S=600 .venv/bin/pytest benchmarks/test_live.py -k soak

``test_live_against_file``: for each load length (``MEMGATE_BENCH_DURATIONS`` seconds of
measured load, default 10 and 60), rounds of ``memgate run`` live, from a capture file,
and unprofiled (the service started by the same code without the agent), interleaved in
each round. From each: the seconds from the end of the load to the result (the run's
process ending; with a file, its reading), requests per second measured, measured
requests per second of the run's whole wall time, disk written per minute of load, and
memgate's own peak RSS (its main process, where the live reader runs). For the file,
``memray stats`` on the same capture is timed too. Medians over the rounds.

``test_soak_memory``: one live soak of ``MEMGATE_BENCH_SOAK_S`` seconds (default 120;
``scenarios/soak/demo-soak.toml`` as shipped, watched for a certain leak; the clean
service): memgate's RSS after each minute and at its peak, the disk its folder holds,
the samples its result keeps, its shape and why it stopped.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from benchmarks._serve import serve_once
from gate.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent
MEMGATE = Path(sys.executable).with_name("memgate")
DURATIONS = [float(d) for d in os.environ.get("MEMGATE_BENCH_DURATIONS", "10,60").split(",")]
ROUNDS = int(os.environ.get("MEMGATE_BENCH_ROUNDS", "2"))
SOAK_S = float(os.environ.get("MEMGATE_BENCH_SOAK_S", "120"))
MODES = ("live", "file")


@pytest.fixture(scope="module")
def scenarios() -> Iterator[dict[str, Path]]:
    """The demo scenario with each capture mode, in a folder beside ``scenarios/`` (its
    relative paths hold)."""
    text = (REPO / "scenarios" / "demo.toml").read_text()
    with tempfile.TemporaryDirectory(dir=REPO, prefix=".bench-") as folder:
        paths = {}
        for mode in MODES:
            paths[mode] = Path(folder) / f"demo-{mode}.toml"
            # Room for the longest load asked for, its warm-up and a file's reading.
            limit = f"time_limit = {max(300, 3 * max(DURATIONS)):g}"
            body = text.replace("time_limit = 300", limit)
            paths[mode].write_text(body + f'capture = "{mode}"\n')
        yield paths


def watched_run(
    args: list[str], out: Path, leak: int = 256
) -> tuple[float, int, float, dict[int, int]]:
    """Run ``memgate run ARGS --out OUT`` on the demo leaking ``leak`` bytes per request;
    its wall time, its peak RSS (sampled every 50 ms), when it ended (epoch seconds) and
    its RSS after each whole minute of its run."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(MEMGATE), "run", *args, "--out", str(out), "--quiet"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "DEMO_LEAK_BYTES": str(leak)},
    )
    me = psutil.Process(proc.pid)
    peak = 0
    by_minute: dict[int, int] = {}
    while proc.poll() is None:
        try:
            rss = me.memory_info().rss
        except psutil.NoSuchProcess:
            break
        peak = max(peak, rss)
        minute = int((time.perf_counter() - started) // 60)
        if minute and minute not in by_minute:
            by_minute[minute] = rss
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    return time.perf_counter() - started, peak, time.time(), by_minute


def load_end(out: Path) -> float:
    """When the load ended (epoch seconds), from its timeline."""
    for line in (out / "load.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "end":
            return float(event["t"])
    raise AssertionError("the load has no end")


def folder_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.iterdir() if p.is_file())


def memray_stats(capture: Path) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "memray", "stats", str(capture)]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def test_live_against_file(scenarios: dict[str, Path], tmp_path: Path, figure) -> None:
    demo = load_scenario(REPO / "scenarios" / "demo.toml").members()[0]
    for duration in DURATIONS:
        rows: dict[str, list[dict[str, float]]] = {m: [] for m in (*MODES, "unprofiled")}
        for number in range(ROUNDS):
            for mode in MODES:
                out = tmp_path / f"{mode}-{duration:g}-{number}"
                args = [str(scenarios[mode]), "--duration", f"{duration:g}"]
                wall, peak, ended, _ = watched_run(args, out)
                result = json.loads((out / "result.json").read_text())
                load = result["load"]
                row = {
                    "after load s": ended - load_end(out),
                    "req/s": load["requests_per_second"],
                    "measured req per wall s": load["measured_requests"] / wall,
                    "MiB per minute": folder_bytes(out) / 2**20 / (load["duration_s"] / 60),
                    "memgate peak MiB": peak / 2**20,
                }
                if mode == "file":
                    row["memray stats s"] = memray_stats(out / "capture.bin")
                rows[mode].append(row)
            rps, _ = serve_once(demo, tmp_path / f"bare-{number}", None, duration)
            rows["unprofiled"].append({"req/s": rps})
        for mode, measured in rows.items():
            medians = {k: statistics.median(r[k] for r in measured) for k in measured[0]}
            text = ", ".join(f"{k} {v:,.1f}" for k, v in medians.items())
            figure(f"{duration:g} s load, {mode}", text)
        live = statistics.median(r["measured req per wall s"] for r in rows["live"])
        file = statistics.median(r["measured req per wall s"] for r in rows["file"])
        figure(f"{duration:g} s load, live / file", f"{live / file:.2f}x measured req per wall s")


def test_soak_memory(tmp_path: Path, figure) -> None:
    # The soak as it is shipped, watched for a certain leak: clean, it must run its
    # whole length (a stop would be a false alarm).
    text = (REPO / "scenarios" / "soak" / "demo-soak.toml").read_text()
    with tempfile.TemporaryDirectory(dir=REPO / "scenarios", prefix=".bench-") as folder:
        # Two folders below the repository, as scenarios/soak/ is.
        path = Path(folder) / "soak.toml"
        path.write_text(text)
        out = tmp_path / "soak"
        wall, peak, _, by_minute = watched_run(
            [str(path), "--duration", f"{SOAK_S:g}"], out, leak=0
        )
    result = json.loads((out / "result.json").read_text())
    assert result["load"]["stop_reason"] != "leak", "a clean soak was stopped: a false alarm"
    minutes = ", ".join(f"{m} min {rss / 2**20:,.1f}" for m, rss in sorted(by_minute.items()))
    figure(
        f"live soak of {SOAK_S:g} s",
        f"memgate RSS (MiB) after {minutes}; peak {peak / 2**20:,.1f} MiB;"
        f" folder {folder_bytes(out) / 2**20:,.2f} MiB (result.json"
        f" {(out / 'result.json').stat().st_size / 2**20:,.2f}); {len(result['timeline'])}"
        f" load samples, {len(result['processes'])} process samples kept; wall {wall:,.0f} s;"
        f" {result['analysis']['shape']}, stopped by {result['load']['stop_reason']}",
    )
