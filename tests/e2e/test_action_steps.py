"""The check step of ``action.yml``, run by bash as the runner runs it: inputs arrive
only as environment variables, lists are split, globs expanded, record refused on pull
requests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO, read_file_commands

pytestmark = pytest.mark.e2e

VENV_BIN = os.path.dirname(sys.executable)


def check_step() -> dict[str, Any]:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    step: dict[str, Any] = next(s for s in action["runs"]["steps"] if s.get("id") == "check")
    return step


def run_step(tmp_path: Path, event: str, **inputs: str) -> subprocess.CompletedProcess[str]:
    """The step's script under ``bash -eo pipefail`` (the runner's shell) with its
    ``env:`` filled from ``inputs`` (the action's defaults otherwise)."""
    action = yaml.safe_load((REPO / "action.yml").read_text())
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    values.update(inputs)
    step = check_step()
    env = {
        key: str(value).replace("${{ inputs.", "").replace(" }}", "")
        for key, value in step["env"].items()
    }
    env = {key: values[name] for key, name in env.items()}
    (tmp_path / "output").write_text("")
    env |= {
        "PATH": VENV_BIN + os.pathsep + os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_WORKSPACE": str(tmp_path / "repo"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_repo(tmp_path: Path) -> Path:
    """The parts of this repository a check of the demo scenario needs."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "scenarios", repo / "scenarios")
    shutil.copytree(
        REPO / "examples", repo / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    return repo


def test_record_on_a_pull_request_is_refused_before_anything_runs(tmp_path: Path) -> None:
    copy_repo(tmp_path)
    for how in ({"record": "true"}, {"args": "--record"}):
        done = run_step(tmp_path, "pull_request", **how, **{"working-directory": "repo"})
        assert done.returncode == 2, done.stdout + done.stderr
        assert "::error title=memgate%3A error::--record: --record is refused" in done.stdout
        assert read_file_commands((tmp_path / "output").read_text())["verdict"] == "error"
        assert not (tmp_path / "repo" / "memgate-out").exists()
        assert not (tmp_path / "repo" / "baselines").exists()


def test_bad_arguments_still_give_a_verdict(tmp_path: Path) -> None:
    copy_repo(tmp_path)
    done = run_step(tmp_path, "push", **{"fail-on": "never", "working-directory": "repo"})
    assert done.returncode == 2
    assert read_file_commands((tmp_path / "output").read_text()) == {"verdict": "error"}


def test_check_step_runs_a_glob_of_scenarios_with_extra_arguments(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    done = run_step(
        tmp_path,
        "push",
        record="true",
        args="--requests 3000 --warmup 300 --quiet",
        **{"working-directory": "repo", "out-dir": "out dir"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = read_file_commands((tmp_path / "output").read_text())
    assert outputs["verdict"] == "flag"  # the first run: no baseline yet
    assert outputs["out-dir"] == str(repo / "out dir")
    assert (repo / "out dir" / "demo" / "report.html").is_file()
    assert (repo / "baselines" / "demo.json").is_file()  # recorded on push
    assert "no baseline yet" in (tmp_path / "summary.md").read_text()
