"""The soak scenario: read live (or sampled), stopped early by a certain leak, full length
when clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import REPO, memgate, planted_leak_line

pytestmark = pytest.mark.e2e

SOAK = REPO / "scenarios" / "soak" / "demo-soak.toml"


@pytest.mark.parametrize("capture", ["live", "sampled"])
def test_a_certain_leak_stops_the_soak_early_and_fails_it(tmp_path: Path, capture: str) -> None:
    out = tmp_path / "out"
    done = memgate(
        "check",
        str(SOAK),
        "--baselines",
        str(tmp_path / "baselines"),
        "--out",
        str(out),
        "--env",
        "DEMO_LEAK_BYTES=1024",
        "--capture",
        capture,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads((out / "demo-soak" / "result.json").read_text())
    assert result["load"]["stop_reason"] == "leak"
    assert result["load"]["measured_duration_s"] < 180  # of the 300 s the soak allows
    assert "stopped early: the leak was certain" in done.stdout
    top = result["sites"][0]["user_frame"]
    assert (top["file"], top["line"]) == ("examples/demo_service/app.py", planted_leak_line())
    assert result["capture"]["mode"] == capture
    assert not list((out / "demo-soak").glob("capture.bin*"))


def test_a_clean_soak_runs_its_full_length_and_passes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = memgate(
        "check",
        str(SOAK),
        "--baselines",
        str(tmp_path / "baselines"),
        "--out",
        str(out),
        "--duration",
        "40",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "demo-soak" / "result.json").read_text())
    assert result["load"]["stop_reason"] == "duration"
    assert result["analysis"]["shape"] != "leak"
    # Constant disk: nothing in the folder grows with the load's length.
    assert max(p.stat().st_size for p in (out / "demo-soak").iterdir()) < 2**20
