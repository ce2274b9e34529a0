"""The installed ``memgate`` command, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import DEMO_SCENARIO, MINIMAL, memgate, one_line_error, planted_leak_line

pytestmark = pytest.mark.e2e


def test_help_for_every_command() -> None:
    top = memgate("--help")
    assert top.returncode == 0 and "run" in top.stdout
    run = memgate("run", "--help")
    assert run.returncode == 0
    for option in ("--out", "--env", "--requests", "--duration", "--warmup"):
        assert option in run.stdout
    assert subprocess.run(
        [sys.executable, "-m", "gate", "--version"], capture_output=True, text=True
    ).stdout.startswith("memgate ")


@pytest.mark.parametrize("capture", ["live", "file"])
def test_leak_of_1024_bytes_per_request(tmp_path: Path, capture: str) -> None:
    out = tmp_path / "out"
    done = memgate(
        "run",
        str(DEMO_SCENARIO),
        "--out",
        str(out),
        "--env",
        "DEMO_LEAK_BYTES=1024",
        "--requests",
        "5000",
        "--capture",
        capture,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["schema_version"] == 3
    points = result["curve"]["points"]
    warm, end = points[result["curve"]["warmup_index"]], points[-1]
    expected = 1024 * (end["requests"] - warm["requests"])
    assert expected / 2 <= end["heap"] - warm["heap"] <= expected * 2
    top = result["sites"][0]["user_frame"]
    assert (top["file"], top["line"]) == ("examples/demo_service/app.py", planted_leak_line())
    assert f"examples/demo_service/app.py:{planted_leak_line()} in __call__" in done.stdout
    assert (out / "service.log").is_file()
    assert result["capture"]["mode"] == capture
    if capture == "live":
        # Nothing grows with the load's length: no capture file, nothing over 1 MiB.
        assert not (out / "capture.bin").exists()
        assert max(p.stat().st_size for p in out.iterdir()) < 2**20
    else:
        # memray's own reporters read the file memray wrote.
        assert (out / "capture.bin").stat().st_size == result["capture"]["bytes"] > 0
        stats = subprocess.run(
            [sys.executable, "-m", "memray", "stats", str(out / "capture.bin")],
            capture_output=True,
            text=True,
        )
        assert stats.returncode == 0, stats.stderr


def test_malformed_scenario_exits_2(write_scenario) -> None:
    path = write_scenario(MINIMAL.replace("requests = 100", "requests = 0"))
    done = memgate("run", str(path))
    assert done.returncode == 2
    assert one_line_error(done) == (
        f"memgate: error: {path}: load.requests: Input should be greater than or equal to 1"
    )


def test_missing_scenario_exits_2(tmp_path: Path) -> None:
    done = memgate("run", str(tmp_path / "nope.toml"))
    assert done.returncode == 2
    assert "no such scenario file" in one_line_error(done)


def test_bad_option_exits_2() -> None:
    done = memgate("run", str(DEMO_SCENARIO), "--requests", "lots")
    assert done.returncode == 2
    assert "not a whole number: 'lots'" in done.stderr


def test_service_that_exits_at_start_exits_3(write_scenario, tmp_path: Path) -> None:
    path = write_scenario(
        MINIMAL.replace(
            "python -m http.server {port} --bind 127.0.0.1",
            "python -c 'raise SystemExit(\\\"cannot bind\\\")'",
        )
    )
    done = memgate("run", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 3
    line = one_line_error(done)
    assert "service exited with code 1 during start-up" in line
    # The reason, then where what the run saw is kept.
    kept = tmp_path / "out" / "failure.json"
    assert line.endswith(f": cannot bind; what the run saw is in {kept}")
    phase = "starting the service counted and sampled (nothing traced)"  # the default
    assert json.loads(kept.read_text())["phase"] == phase
    assert (tmp_path / "out" / "service.log").is_file()


def test_the_flame_graph_of_what_is_alive_at_the_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = memgate(
        "run",
        str(DEMO_SCENARIO),
        "--out",
        str(out),
        "--env",
        "DEMO_LEAK_BYTES=1024",
        "--requests",
        "2000",
        "--flamegraph",
    )
    assert done.returncode == 0, done.stderr
    page = (out / "flamegraph.html").read_text()
    # memray's own page, drawn from the live snapshot at the end of the load: the planted
    # line is in it, memgate's agent is not.
    assert "<html" in page and "memray" in page
    assert "examples/demo_service/app.py" in page
    assert "memgate_agent.py" not in page and "runpy" not in page
    refused = memgate("run", str(DEMO_SCENARIO), "--flamegraph", "--capture", "file")
    assert refused.returncode == 2
    assert "run memray flamegraph on capture.bin" in one_line_error(refused)
