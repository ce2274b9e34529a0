"""The installed ``memgate merge`` on report.json files laid out as a CI matrix's
downloaded artifacts leave them (one folder per artifact)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import REPO, memgate, read_file_commands

pytestmark = pytest.mark.e2e

LEAK_RESULT = REPO / "tests" / "fixtures" / "result-v1-leak256.json"


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """``memgate-demo/demo/report.json``: the real leak run compared with no baseline
    (fails: a leak is a leak); ``memgate-api/api/report.json``: a copy renamed to
    ``api``, with no findings (passes)."""
    art = tmp_path / "artifacts"
    demo = art / "memgate-demo" / "demo" / "report.json"
    demo.parent.mkdir(parents=True)
    done = memgate(
        "report",
        str(LEAK_RESULT),
        "--format",
        "json",
        "--baselines",
        str(tmp_path / "no-baselines"),
        "--out",
        str(demo),
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(demo.read_text())
    assert doc["verdict"] == "fail"
    api = dict(doc, scenario=dict(doc["scenario"], name="api"), verdict="pass", findings=[])
    (art / "memgate-api" / "api").mkdir(parents=True)
    (art / "memgate-api" / "api" / "report.json").write_text(json.dumps(api))
    return art


def test_merge_prints_one_verdict_and_exits_like_check(artifacts: Path, tmp_path: Path) -> None:
    done = memgate("merge", str(artifacts))
    assert (done.returncode, done.stderr) == (1, "")
    lines = done.stdout.splitlines()
    assert lines[0] == "memgate merge: FAIL (2 scenarios: 1 fail, 1 pass)"
    rows = [" ".join(line.split()) for line in lines if line.lstrip().startswith(("demo", "api"))]
    env = json.loads((artifacts / "memgate-api" / "api" / "report.json").read_text())["run"][
        "provenance"
    ]["env_key"]
    assert rows[0].startswith(f"demo {env} FAIL 2 heap growth per request")
    assert f"api {env} PASS 0" in rows
    # The pass alone passes; as Markdown, the verdict is the first line.
    alone = memgate("merge", str(artifacts / "memgate-api"), "--format", "markdown")
    assert alone.returncode == 0
    assert alone.stdout.startswith("## ✅ memgate merge: PASS\n\n1 scenario: 1 pass.\n")


def test_a_bad_input_exits_2_with_one_line(artifacts: Path, tmp_path: Path) -> None:
    bad = tmp_path / "report.json"
    bad.write_text('{"report_version": 1, "verdict": "pass"}')
    done = memgate("merge", str(artifacts), str(bad), "--format", "json")
    assert done.returncode == 2
    assert done.stderr == f"memgate: error: {bad}: scenario: Field required\n"
    merged = json.loads(done.stdout)
    assert merged["verdict"] == "error"
    assert [s["scenario"] for s in merged["scenarios"]] == ["demo", "api"]


def test_inside_actions_one_summary_and_the_verdict(artifacts: Path, tmp_path: Path) -> None:
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    output.write_text("")
    done = memgate(
        "merge",
        str(artifacts),
        env={
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
        },
    )
    assert done.returncode == 1, done.stdout
    assert read_file_commands(output.read_text()) == {"verdict": "fail"}
    text = summary.read_text()
    assert text.startswith("## ❌ memgate merge: FAIL\n")
    assert "| `demo` |" in text and "| `api` |" in text
    assert text.count("### ❌ `demo` on") == 1
