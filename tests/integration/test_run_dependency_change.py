"""A dependency upgrade that brings a leak in, as its pull request's check sees it: the
same service run in two environments of its own, ``somelib`` 1.0.0 in the baseline's
and 2.0.0 in the check's, by ``memgate check`` and ``memgate report`` as a user runs
them (real memray, real Locust, real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support import DEPENDENCY_SERVICE, memgate, parse_command, service_env

pytestmark = pytest.mark.integration

SCENARIO = """\
description = "a service whose dependency, somelib, is upgraded"

[service]
command = "python app.py {{port}}"
python = "{python}"
health_url = "http://127.0.0.1:{{port}}/"

[load]
locustfile = "locustfile.py"
users = 2
spawn_rate = 2
warmup_requests = 300
requests = 2500
"""


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("upgrade")
    shutil.copytree(DEPENDENCY_SERVICE, folder, dirs_exist_ok=True)
    old = service_env(folder / "env-1.0.0", "1.0.0", keeps=False)
    new = service_env(folder / "env-2.0.0", "2.0.0", keeps=True)
    baselines = folder / "baselines"
    scenario = folder / "service.toml"
    scenario.write_text(SCENARIO.format(python=old))
    recorded = memgate(
        "check", str(scenario), "--record", "--baselines", str(baselines), "--quiet",
        "--out", str(folder / "main"), cwd=folder,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    # The pull request: the pin moved to 2.0.0, the service's environment with it.
    (folder / "requirements.txt").write_text("# the service's dependencies\nsomelib==2.0.0\n")
    scenario.write_text(SCENARIO.format(python=new))
    checked = memgate(
        "check", str(scenario), "--baselines", str(baselines), "--quiet",
        "--out", str(folder / "pr"), cwd=folder,
    )  # fmt: skip
    result = folder / "pr" / "service" / "result.json"
    report = {
        form: memgate(
            "report", str(result), "--format", form, "--baselines", str(baselines),
            "--workspace", str(folder), cwd=folder,
        ).stdout
        for form in ("terminal", "markdown", "json", "github")
    }  # fmt: skip
    return {"checked": checked, "report": report, "result": result}


def test_both_environments_are_recorded_with_their_version(upgraded) -> None:
    doc = json.loads(Path(upgraded["result"]).read_text())
    assert doc["provenance"]["distributions"]["somelib"] == "2.0.0"
    assert doc["provenance"]["packages"]["somelib"] == ["somelib"]


def test_the_check_fails_and_names_the_upgrade_with_both_versions(upgraded) -> None:
    checked = upgraded["checked"]
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "somelib 1.0.0 → 2.0.0" in checked.stdout
    for form in ("terminal", "markdown"):
        assert "somelib 1.0.0 → 2.0.0 (" in upgraded["report"][form], form
    (changed,) = json.loads(upgraded["report"]["json"])["dependencies_changed"]
    assert (changed["name"], changed["before"], changed["after"]) == ("somelib", "1.0.0", "2.0.0")
    assert changed["findings"] >= 1


def test_an_annotation_lands_on_the_line_that_pins_the_upgrade(upgraded) -> None:
    lines = upgraded["report"]["github"].splitlines()
    commands = [parse_command(line) for line in lines if line.startswith("::")]
    pinned = [c for c in commands if c[1].get("file") == "requirements.txt"]
    assert pinned, upgraded["report"]["github"]
    assert all(c[0] == "error" and c[1].get("line") == "2" for c in pinned)
    assert all("somelib 1.0.0 → 2.0.0" in c[2] for c in pinned)
    # The service's line that calls it has its own, saying what it goes through.
    at_app = [c for c in commands if c[1].get("file") == "app.py"]
    assert at_app and "(through somelib 1.0.0 → 2.0.0)" in at_app[0][2]
