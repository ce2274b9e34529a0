"""The offline commands (compare, baseline) through ``gate.cli.main``, in-process."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gate.cli import main
from gate.result import write_result
from tests.support import make_result


def result_file(tmp_path: Path, **settings: object) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    result = make_result()
    result = dataclasses.replace(result, settings={**result.settings, **settings})
    path = tmp_path / "result.json"
    write_result(result, path)
    return path


def test_record_show_compare(tmp_path: Path, capsys) -> None:
    recorded = result_file(tmp_path / "one")
    path = result_file(tmp_path, users=5)  # another run (another run id) of the same scenario
    baselines = str(tmp_path / "b")
    assert main(["baseline", "record", str(recorded), "--baselines", baselines]) == 0
    assert main(["baseline", "show", "demo", "--baselines", baselines]) == 0
    # The fixture leaks, but so did the run recorded: compared by rate, it passes.
    assert main(["compare", str(path), "--baselines", baselines]) == 0
    out = capsys.readouterr().out
    assert "recorded in" in out and "baseline: demo" in out
    assert "memgate check: demo: PASS (compared with 1 baseline run)" in out


def test_a_recorded_run_is_not_compared_with_itself(tmp_path: Path, capsys) -> None:
    path = result_file(tmp_path)
    baselines = str(tmp_path / "b")
    assert main(["baseline", "record", str(path), "--baselines", baselines]) == 0
    # Its only history is itself: left out, there is nothing to compare with, and a leak
    # with no baseline fails.
    assert main(["compare", str(path), "--baselines", baselines]) == 1
    assert "FAIL (compared with 0 baseline runs)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"gate": {"keep": 0}},
            "result.json: settings.gate.keep: Input should be greater than or equal to 2",
        ),
        ({"gate": 5}, "result.json: settings.gate: Input should be a valid dictionary"),
        (
            {"budgets": {"max_peak_heap": "lots"}},
            "result.json: settings.budgets.max_peak_heap: could not parse",
        ),
    ],
)
def test_bad_settings_in_a_result_are_bad_input(tmp_path: Path, capsys, settings, message) -> None:
    path = result_file(tmp_path, **settings)
    baselines = tmp_path / "b"
    assert main(["baseline", "record", str(path), "--baselines", str(baselines)]) == 2
    assert main(["compare", str(path), "--baselines", str(baselines)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("memgate: error: ") for line in err)
    assert message in err[0]
    assert not (baselines / "demo.json").exists()


def test_accept_needs_a_reason(tmp_path: Path, capsys) -> None:
    path = result_file(tmp_path)
    code = main(["baseline", "accept", str(path), "--reason", " ", "--baselines", str(tmp_path)])
    assert code == 2
    assert "--reason must say why" in capsys.readouterr().err


def test_show_without_history(tmp_path: Path, capsys) -> None:
    assert main(["baseline", "show", "demo", "--baselines", str(tmp_path)]) == 2
    assert "no baseline for scenario 'demo'" in capsys.readouterr().err
