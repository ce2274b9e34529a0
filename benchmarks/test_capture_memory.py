"""The analyzer's peak memory against the capture's length.

    .venv/bin/pytest benchmarks/test_capture_memory.py

Captures of the clean demo service of ``MEMGATE_BENCH_LENGTHS`` measured seconds
(default 5, 20 and 40) are read, each in a fresh process, the way ``memgate run`` reads
them; the process's peak RSS is compared with the capture's size.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks._serve import serve_once
from gate.scenario import ProfileSpec, load_scenario

REPO = Path(__file__).resolve().parent.parent
LENGTHS = [float(s) for s in os.environ.get("MEMGATE_BENCH_LENGTHS", "5 20 40").split()]
READER = (
    "import resource, sys; from benchmarks._serve import read_capture;"
    " read_capture(__import__('pathlib').Path(sys.argv[1]));"
    " print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def peak_rss_kib(capture: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", READER, str(capture)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_peak_memory_against_capture_length(tmp_path: Path, figure) -> None:
    scenario = load_scenario(REPO / "scenarios" / "demo.toml")
    rows = []
    for seconds in LENGTHS:
        out = tmp_path / f"{seconds:g}s"
        serve_once(scenario, out, ProfileSpec(), seconds)
        capture = out / "capture.bin"
        rows.append((seconds, capture.stat().st_size / 2**20, peak_rss_kib(capture) / 1024))
        capture.unlink()
    for seconds, size_mib, peak_mib in rows:
        figure(
            f"analyzer peak, {seconds:g} s capture",
            f"{peak_mib:.0f} MiB peak RSS for a {size_mib:.0f} MiB capture",
        )
    (_, first_size, first_peak), (_, last_size, last_peak) = rows[0], rows[-1]
    figure(
        "analyzer peak growth",
        f"capture x{last_size / first_size:.1f} -> peak x{last_peak / first_peak:.2f}",
    )
    assert last_peak / first_peak < (last_size / first_size) / 2
