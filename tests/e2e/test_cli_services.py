"""Two services in one scenario (examples/queue_service: an order API and the worker it
hands jobs to over HTTP), with a leak planted in the worker only: the worker fails,
named, with its line annotated; the API is judged on its own; one verdict."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.support import (
    REPO,
    actions_step,
    memgate,
    parse_command,
    planted_leak_line,
    read_file_commands,
)

pytestmark = pytest.mark.e2e

SCENARIO = REPO / "scenarios" / "services.toml"
WORKER = REPO / "examples" / "queue_service" / "worker.py"
RUN = ("--requests", "3000", "--warmup", "500", "--quiet")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="module")
def clean_record(folder: Path) -> subprocess.CompletedProcess[str]:
    """Both services without a leak, recorded into their histories (a main-branch run)."""
    return memgate(
        "check",
        str(SCENARIO),
        "--record",
        "--baselines",
        str(folder / "baselines"),
        "--out",
        str(folder / "clean"),
        *RUN,
    )


@pytest.fixture(scope="module")
def leak_check(
    folder: Path, clean_record: subprocess.CompletedProcess[str]
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The worker leaking 256 B per job, checked inside a simulated Actions step."""
    step = folder / "step"
    env = actions_step(step, REPO)
    done = memgate(
        "check",
        str(SCENARIO),
        "--baselines",
        str(folder / "baselines"),
        "--out",
        str(folder / "leak"),
        "--env",
        "WORKER_LEAK_BYTES=256",
        *RUN,
        env=env,
    )
    return done, step


def test_each_service_is_recorded_in_its_own_history(
    folder: Path, clean_record: subprocess.CompletedProcess[str]
) -> None:
    done = clean_record
    assert done.returncode == 0, done.stdout + done.stderr
    baselines = folder / "baselines" / "services"
    assert sorted(p.name for p in baselines.glob("*.json")) == ["api.json", "worker.json"]
    for name in ("api", "worker"):
        history = json.loads((baselines / f"{name}.json").read_text())
        assert history["scenario"] == f"services/{name}" and len(history["runs"]) == 1
        assert f" appended to {baselines / name}.json (1 run)\n" in done.stdout
        report = json.loads((folder / "clean" / "services" / name / "report.json").read_text())
        assert report["scenario"]["service"] == name
        assert report["verdict"] == "flag"  # no baseline yet, before this run was recorded
        assert report["run"]["shape"] == "flat", report["findings"]
    assert "memgate check: services: FLAG (worker flag, api flag)" in done.stdout
    shown = memgate("baseline", "show", "services", "--baselines", str(folder / "baselines"))
    assert shown.returncode == 0, shown.stderr
    assert "baseline: services/api" in shown.stdout and "baseline: services/worker" in shown.stdout


def test_the_leaking_service_fails_named_and_the_other_is_judged_apart(
    folder: Path, leak_check: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    done, step = leak_check
    assert done.returncode == 1, done.stdout + done.stderr
    out = folder / "leak" / "services"
    worker = json.loads((out / "worker" / "report.json").read_text())
    api = json.loads((out / "api" / "report.json").read_text())
    assert worker["verdict"] == "fail" and worker["compared_runs"] == 1
    assert worker["run"]["shape"] == "leak"
    # 256 B per job; three requests in four place an order, each one job.
    assert 256 * 0.75 * 0.6 < worker["run"]["heap_growth"]["slope"] < 256 * 0.75 * 1.6
    assert worker["sites"][0]["frame"] == {
        "function": "process_job",
        "file": "examples/queue_service/worker.py",
        "line": planted_leak_line(WORKER),
    }
    assert api["run"]["shape"] == "flat" and api["compared_runs"] == 1
    schema = json.loads((REPO / "docs" / "report.schema.json").read_text())
    for written in (worker, api):  # real reports, as other tools read them
        jsonschema.validate(written, schema)
    assert api["verdict"] != "fail", api["findings"]
    assert "memgate check: services: FAIL (worker fail, api " in done.stdout
    # Annotations name the service, on the worker's planted line only.
    commands = [parse_command(line) for line in done.stdout.splitlines() if line.startswith("::")]
    errors = [props for name, props, _ in commands if name == "error"]
    assert errors and all(e["title"].startswith("memgate services/worker:") for e in errors)
    at_line = [e for e in errors if e.get("file") == "examples/queue_service/worker.py"]
    assert [e["line"] for e in at_line] == [str(planted_leak_line(WORKER))]
    # One job summary with a section per service; the outputs list both reports.
    summary = (step / "summary.md").read_text()
    assert summary.count("## ❌ memgate `services/worker`: FAIL") == 1
    assert summary.count("memgate `services/api`") == 1
    outputs = read_file_commands((step / "output").read_text())
    assert outputs["verdict"] == "fail"
    assert outputs["json-report"].splitlines() == [
        str(out / "worker" / "report.json"),
        str(out / "api" / "report.json"),
    ]


def test_merge_reads_each_service(
    folder: Path, leak_check: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    merged = memgate("merge", str(folder / "leak"), "--format", "json")
    assert merged.returncode == 1, merged.stdout + merged.stderr
    doc = json.loads(merged.stdout)
    assert doc["verdict"] == "fail"
    assert sorted(r["scenario"] for r in doc["scenarios"]) == ["services/api", "services/worker"]
