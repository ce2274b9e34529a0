"""Wall time of a check on the demo scenario, split into its phases.

    .venv/bin/pytest benchmarks/test_end_to_end.py

Runs the demo scenario (``MEMGATE_BENCH_REQUESTS`` measured requests, default 3000)
``MEMGATE_BENCH_ROUNDS`` times (default 3) the way ``memgate check`` does, timing each
phase with an observer: the service's start-up under memray (its interpreter checked,
until its health check answers), the load, the shutdown, the analysis (curve, shapes,
sites from the live points) and the reporting (the verdict against a history, the JSON,
Markdown and HTML reports). ``test_live.py`` sets the live reading against the capture
file and ``memray stats``.
memgate's own start-up is ``memgate --version`` in a fresh process. Figures are medians.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gate.baseline import BaselineStore
from gate.report.html import render_html
from gate.report.json import render_json
from gate.report.markdown import render_markdown
from gate.report.report import Report
from gate.result import write_result
from gate.run.orchestrate import run_scenario
from gate.scenario import BudgetSpec, load_scenario
from gate.summary import summarize
from gate.verdict import decide

REPO = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("MEMGATE_BENCH_ROUNDS", "3"))
REQUESTS = int(os.environ.get("MEMGATE_BENCH_REQUESTS", "3000"))
PHASES = ("start-up", "load", "shutdown", "analysis", "reporting")
NAMES = {
    "checking the services' interpreters": "start-up",
    "starting the service under memray": "start-up",
    "load": "load",
    "stopping the service": "shutdown",
    "reading the service's capture": "analysis",
}


class Stopwatch:
    """A run observer that notes when each phase starts."""

    show_capture_progress = False

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def phase(self, name: str) -> None:
        self.marks.append((NAMES[name], time.perf_counter()))

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        pass


def one_check(out: Path, baselines: Path) -> dict[str, float]:
    scenario = load_scenario(REPO / "scenarios" / "demo.toml").with_overrides(requests=REQUESTS)
    watch = Stopwatch()
    result = run_scenario(scenario, out, watch)
    analysed = time.perf_counter()
    write_result(result, out / "result.json")
    store = BaselineStore(baselines)
    current = summarize(result)
    report = Report(result, current, decide(current, store.load("demo"), BudgetSpec()))
    for name, render in (("json", render_json), ("md", render_markdown), ("html", render_html)):
        (out / f"report.{name}").write_text(render(report))
    store.record(result)
    done = time.perf_counter()
    spans = {name: 0.0 for name in PHASES}
    ends = [t for _, t in watch.marks[1:]] + [analysed]
    for (name, started), ended in zip(watch.marks, ends, strict=True):
        spans[name] += ended - started
    spans["reporting"] = done - analysed
    if (out / "capture.bin").exists():  # with profile.capture = "file"
        spans["memray stats"] = memray_stats(out / "capture.bin")
    return spans


def memray_stats(capture: Path) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "memray", "stats", str(capture)]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def memgate_startup() -> float:
    memgate = shutil.which("memgate", path=os.path.dirname(sys.executable))
    assert memgate
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([memgate, "--version"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_check_phases(benchmark, tmp_path: Path, figure) -> None:
    rounds: list[dict[str, float]] = []

    def check() -> None:
        rounds.append(one_check(tmp_path / f"run{len(rounds)}", tmp_path / "baselines"))

    benchmark.pedantic(check, rounds=ROUNDS, iterations=1)
    medians = {name: statistics.median(r[name] for r in rounds) for name in PHASES}
    after_load = statistics.median(r["shutdown"] + r["analysis"] + r["reporting"] for r in rounds)
    total = sum(medians.values())
    startup = memgate_startup()
    figure("memgate start-up", f"{startup * 1000:.0f} ms (memgate --version, median of 5)")
    for name in PHASES:
        figure(
            f"check {name}",
            f"{medians[name]:.1f} s ({medians[name] / total:.0%} of {total:.1f} s; median of"
            f" {ROUNDS}, {REQUESTS:,} measured requests)",
        )
    figure(
        "end of load to verdict",
        f"{after_load:.1f} s (shutdown + analysis + reporting; live: see test_live.py for"
        " the capture file and memray stats beside it)",
    )
    benchmark.extra_info.update({name: round(v, 3) for name, v in medians.items()})
    assert all(value > 0 for value in medians.values())
