"""``memgate check`` / ``compare`` / ``baseline`` on the demo service, as CI runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import (
    DEMO_SCENARIO,
    REPO,
    actions_step,
    memgate,
    one_line_error,
    parse_command,
    planted_leak_line,
    read_file_commands,
)

pytestmark = pytest.mark.e2e

RUN = ("--requests", "3000", "--warmup", "500", "--quiet")


def check(
    baselines: Path, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return memgate(
        "check",
        str(DEMO_SCENARIO),
        "--baselines",
        str(baselines),
        "--out",
        str(out),
        *extra,
        *RUN,
        env=env,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose baselines/ holds three recorded clean runs, checked into one --out:
    record/demo/ the last, record/demo.previous/ the one before."""
    root = tmp_path_factory.mktemp("check")
    history = root / "baselines" / "demo.json"
    for n in range(3):
        done = check(root / "baselines", root / "record", "--record")
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        kept = f"previous run kept in {root / 'record' / 'demo.previous'}"
        assert (lines[0] == kept) is (n > 0), lines[0]
        runs = "1 run" if n == 0 else f"{n + 1} runs"
        (said,) = [line for line in lines if line.startswith(("recorded", "not recorded"))]
        assert said.startswith("recorded: run ") and said.endswith(f" to {history} ({runs})")
    assert len(json.loads(history.read_text())["runs"]) == 3
    newest, previous = (
        root / "record" / name / "result.json" for name in ("demo", "demo.previous")
    )
    assert newest.read_bytes() != previous.read_bytes()
    assert sorted(os.listdir(root / "record")) == ["demo", "demo.previous"]
    return root


@pytest.fixture(scope="module")
def actions(recorded: Path) -> dict[str, str]:
    """A simulated GitHub Actions step: its environment and the files it appends to."""
    return actions_step(
        recorded / "step", REPO, GITHUB_HEAD_REF="feature/cache-ids", GITHUB_ACTOR="octocat"
    )


@pytest.fixture(scope="module")
def leak_check(recorded: Path, actions: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The leaking service checked inside (simulated) GitHub Actions."""
    return check(
        recorded / "baselines", recorded / "leak", "--env", "DEMO_LEAK_BYTES=256", env=actions
    )


def test_first_check_without_baseline_flags_and_passes(tmp_path: Path) -> None:
    done = check(tmp_path / "none", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "memgate check: demo: FLAG" in done.stdout
    assert "no baseline yet" in done.stdout
    strict = memgate(
        "compare",
        str(tmp_path / "out" / "demo" / "result.json"),
        "--baselines",
        str(tmp_path / "none"),
        "--fail-on",
        "flag",
    )
    assert strict.returncode == 1


def test_clean_run_passes_and_leak_fails_naming_the_line(recorded: Path, leak_check) -> None:
    clean = check(recorded / "baselines", recorded / "clean")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "memgate check: demo: PASS (compared with 3 baseline runs)" in clean.stdout
    # Outside Actions: the reports are written, but no workflow command is printed.
    assert not [line for line in clean.stdout.splitlines() if line.startswith("::")]
    for name in ("report.json", "report.html"):
        assert (recorded / "clean" / "demo" / name).is_file()
    assert (
        json.loads((recorded / "clean" / "demo" / "report.json").read_text())["verdict"] == "pass"
    )
    assert leak_check.returncode == 1, leak_check.stdout + leak_check.stderr
    assert "memgate check: demo: FAIL" in leak_check.stdout
    line = f"examples/demo_service/app.py:{planted_leak_line()} in __call__"
    assert line in leak_check.stdout
    offline = memgate(
        "compare",
        str(recorded / "leak" / "demo" / "result.json"),
        "--baselines",
        str(recorded / "baselines"),
    )
    assert offline.returncode == 1
    assert "memgate check: demo: FAIL" in offline.stdout


@pytest.mark.parametrize("content", [b'{"schema_version": 1, "scenario": "demo", "ru', b"\x00junk"])
def test_a_broken_baseline_exits_2_and_stays_as_it_was(
    recorded: Path, tmp_path: Path, content: bytes
) -> None:
    broken = tmp_path / "baselines"
    broken.mkdir()
    (broken / "demo.json").write_bytes(content)
    result = str(recorded / "record" / "demo" / "result.json")
    done = memgate("compare", result, "--baselines", str(broken))
    assert done.returncode == 2
    assert one_line_error(done).startswith(f"memgate: error: {broken / 'demo.json'}: ")
    record = memgate("baseline", "record", result, "--baselines", str(broken))
    assert record.returncode == 2
    assert (broken / "demo.json").read_bytes() == content


def test_accept_keeps_an_audit_entry_and_becomes_the_reference(
    recorded: Path, leak_check, tmp_path: Path
) -> None:
    assert leak_check.returncode == 1
    baselines = tmp_path / "baselines"
    shutil.copytree(recorded / "baselines", baselines)
    leak_result = str(recorded / "leak" / "demo" / "result.json")
    reason = "retains request ids for the audit feature"
    accepted = memgate(
        "baseline", "accept", leak_result, "--baselines", str(baselines), "--reason", reason
    )
    assert accepted.returncode == 0, accepted.stderr
    audit = (baselines / "demo.audit.jsonl").read_text().splitlines()
    (entry,) = [json.loads(line) for line in audit]
    assert (entry["reason"], entry["action"]) == (reason, "accept")
    assert entry["who"]
    again = memgate("compare", leak_result, "--baselines", str(baselines))
    assert again.returncode == 0, again.stdout
    assert "(compared with 1 baseline run)" in again.stdout
    shown = memgate("baseline", "show", "demo", "--baselines", str(baselines))
    assert shown.returncode == 0
    assert "(reference)" in shown.stdout and reason in shown.stdout


def test_inside_actions_a_leak_is_annotated_summarized_and_output(
    leak_check, actions: dict[str, str], recorded: Path
) -> None:
    assert leak_check.returncode == 1, leak_check.stdout + leak_check.stderr
    commands = [
        parse_command(line) for line in leak_check.stdout.splitlines() if line.startswith("::")
    ]
    # Everything memgate printed before its own annotations was between stop-commands.
    names = [name for name, _, _ in commands]
    token = names[0] == "stop-commands" and commands[0][2]
    assert token and f"::{token}::" in leak_check.stdout
    errors = [(props, data) for name, props, data in commands if name == "error"]
    at_leak = [
        props
        for props, _ in errors
        if props.get("file") == "examples/demo_service/app.py"
        and props.get("line") == str(planted_leak_line())
    ]
    assert len(at_leak) == 1, errors
    assert at_leak[0]["title"].startswith("memgate demo: memory regression")
    # The job summary: appended once, verdict first, findings table, Mermaid chart.
    summary = Path(actions["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("## ❌ memgate `demo`: FAIL\n")
    assert summary.count("## ❌ memgate") == 1
    assert "| | metric | baseline ± spread | current | change | why | where |" in summary
    assert "heap growth per request" in summary
    assert "```mermaid\n" in summary and "xychart-beta" in summary
    # Sampled, the default: the function by its qualified name (memray's: `__call__`).
    where = f"`examples/demo_service/app.py:{planted_leak_line()}` in `RetainPerRequest.__call__`"
    assert where in summary
    outputs = read_file_commands(Path(actions["GITHUB_OUTPUT"]).read_text())
    assert outputs["verdict"] == "fail"
    report = Path(outputs["json-report"])
    assert report == recorded / "leak" / "demo" / "report.json"
    assert json.loads(report.read_text())["verdict"] == "fail"
    assert Path(outputs["html-report"]).read_text().startswith("<!DOCTYPE html>")
