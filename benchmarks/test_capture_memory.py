"""The analyzer against ``memray stats`` on captures of increasing length: seconds per
100 MiB and peak memory, on the same files, in the same run.

    .venv/bin/pytest benchmarks/test_capture_memory.py

Captures of the clean demo service of ``MEMGATE_BENCH_LENGTHS`` measured seconds
(default 5, 20 and 40) are each read ``MEMGATE_BENCH_ROUNDS`` times (default 2) by
memgate (the way ``memgate run`` reads them) and by ``memray stats``, alternately, each
in a fresh process whose peak RSS is taken from ``getrusage``. Figures are medians.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._serve import serve_once
from gate.scenario import ProfileSpec, load_scenario

REPO = Path(__file__).resolve().parent.parent
LENGTHS = [float(s) for s in os.environ.get("MEMGATE_BENCH_LENGTHS", "5 20 40").split()]
ROUNDS = int(os.environ.get("MEMGATE_BENCH_ROUNDS", "2"))
PEAK = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
MEMGATE = (
    "import sys; from pathlib import Path; from benchmarks._serve import read_capture;"
    f" read_capture(Path(sys.argv[1])); {PEAK}"
)
MEMRAY_STATS = (
    "import runpy, sys; sys.argv = ['memray', 'stats', '--json', '-f', '-o',"
    " sys.argv[1] + '.stats.json', sys.argv[1]]\n"
    "try:\n    runpy.run_module('memray', run_name='__main__')\n"
    "except SystemExit:\n    pass\n" + PEAK
)


def timed(program: str, capture: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of ``program`` run on ``capture`` in a fresh process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", program, str(capture)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    return seconds, int(done.stdout.strip().splitlines()[-1]) / 1024


def test_analysis_against_memray_stats(tmp_path: Path, figure) -> None:
    scenario = load_scenario(REPO / "scenarios" / "demo.toml").members()[0]
    rows = []
    for seconds in LENGTHS:
        out = tmp_path / f"{seconds:g}s"
        serve_once(scenario, out, ProfileSpec(capture="file"), seconds)
        capture = out / "capture.bin"
        ours, theirs = [], []
        for _ in range(ROUNDS):
            ours.append(timed(MEMGATE, capture))
            theirs.append(timed(MEMRAY_STATS, capture))
        size_mib = capture.stat().st_size / 2**20
        rows.append(
            (
                seconds,
                size_mib,
                statistics.median(s for s, _ in ours),
                statistics.median(s for s, _ in theirs),
                statistics.median(p for _, p in ours),
                statistics.median(p for _, p in theirs),
            )
        )
        capture.unlink()
    for seconds, size_mib, ours_s, stats_s, ours_peak, stats_peak in rows:
        figure(
            f"{seconds:g} s capture, {size_mib:.0f} MiB",
            f"memgate {ours_s:.1f} s ({ours_s / size_mib * 100:.1f} s per 100 MiB), peak"
            f" {ours_peak:.0f} MiB | memray stats {stats_s:.1f} s"
            f" ({stats_s / size_mib * 100:.1f} s per 100 MiB), peak {stats_peak:.0f} MiB |"
            f" time ratio {ours_s / stats_s:.2f}",
        )
    first, last = rows[0], rows[-1]
    figure(
        "analyzer peak growth",
        f"capture x{last[1] / first[1]:.1f} -> memgate peak x{last[4] / first[4]:.2f},"
        f" memray stats peak x{last[5] / first[5]:.2f}",
    )
    assert last[4] / first[4] < (last[1] / first[1]) / 2
