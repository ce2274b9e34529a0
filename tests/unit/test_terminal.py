from __future__ import annotations

from gate.report.terminal import render_run, size
from tests.support import make_result


def test_size_units() -> None:
    assert [size(0), size(0.25), size(1023), size(1536), size(-3 * 2**20), size(5 * 2**30)] == [
        "0 B",
        "0.2 B",
        "1023 B",
        "1.5 KiB",
        "-3.0 MiB",
        "5.0 GiB",
    ]


def test_run_summary_names_growth_and_the_leaking_line() -> None:
    text = render_run(make_result(leak_per_request=100), width=120)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "memgate run: demo"
    assert (
        "load      1,000 requests (200 warm-up, 800 measured), 0 failed; 100 req/s measured;"
        " stopped by requests" in lines
    )
    assert "heap      976.6 KiB after warm-up -> 1.0 MiB at end (100 B/request)" in lines
    assert "rss       38.1 MiB after warm-up -> 38.3 MiB at end (200 B/request)" in lines
    assert "capture   capture.bin: 50.0 MiB, 900 snapshots, read in 4.2 s" in lines
    assert "1 100 B 78.1 KiB app.py:54 in __call__" in [" ".join(line.split()) for line in lines]
    # The steady site did not grow: it is not listed.
    assert "json" not in text


def test_run_summary_says_when_nothing_grew() -> None:
    text = render_run(make_result(leak_per_request=0), width=120)
    assert "no allocation site grew after warm-up" in text
