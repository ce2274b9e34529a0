"""``memgate merge``: report.json files of several checks -> one summary, one verdict."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

import gate.report.json
from gate import merge
from gate.cli import main
from gate.merge import BadInput, ReportError, collect, parse_report
from gate.model import Frame
from gate.outcome import Outcome
from gate.report.formats import Format, render
from gate.report.github import annotate_merged, render_annotations
from gate.report.json import render_merged_json
from gate.report.markdown import render_merged_markdown
from gate.report.terminal import render_merged
from gate.verdict import Finding
from tests.support import (
    HOSTILE,
    leak_report,
    markdown_structure,
    parse_command,
    read_file_commands,
    runner_lines,
    table_cells,
)

ENV = "Linux-x86_64-py3.11-memray1.20-2cpu"


@functools.cache
def _leak_json() -> str:
    return render(leak_report(), Format.JSON)


def leak_doc() -> dict[str, Any]:
    """A real report.json: the 256 B/request leak against three clean runs (fail)."""
    doc: dict[str, Any] = json.loads(_leak_json())
    doc["run"]["provenance"]["env_key"] = ENV
    return doc


def doc(name: str, verdict: str, env: str = ENV) -> dict[str, Any]:
    """That report renamed, with the findings that give ``verdict``."""
    out = leak_doc()
    out["scenario"]["name"] = name
    out["run"]["provenance"]["env_key"] = env
    flags = [f for f in out["findings"] if f["severity"] == "flag"]
    out["findings"] = {"fail": out["findings"], "flag": flags, "pass": []}[verdict]
    out["verdict"] = verdict
    return out


def write(folder: Path, data: Any, name: str = "report.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def parsed(data: dict[str, Any], source: str = "x/report.json") -> merge.ScenarioReport:
    return parse_report(data, source=source)


def test_worst_verdict_rule() -> None:
    assert Outcome.worst([Outcome.PASS, Outcome.FLAG, Outcome.PASS]) is Outcome.FLAG
    assert Outcome.worst([Outcome.FLAG, Outcome.FAIL, Outcome.PASS]) is Outcome.FAIL
    assert Outcome.worst([Outcome.FAIL, Outcome.ERROR]) is Outcome.ERROR
    assert Outcome.worst([Outcome.PASS]) is Outcome.PASS
    assert Outcome.worst([]) is Outcome.ERROR  # nothing merged is never a pass
    reports = [parsed(doc("a", "pass")), parsed(doc("b", "flag"))]
    assert merge.merge(reports).verdict is Outcome.FLAG
    assert merge.merge(reports, [BadInput("c", "broken")]).verdict is Outcome.ERROR
    assert merge.merge([]).verdict is Outcome.ERROR


def test_rows_are_worst_first_then_by_name() -> None:
    reports = [
        parsed(doc("b", "pass")),
        parsed(doc("a", "pass")),
        parsed(doc("z", "fail")),
        parsed(doc("c", "flag")),
    ]
    assert [r.scenario for r in merge.merge(reports).reports] == ["z", "c", "a", "b"]


def test_worst_finding_is_a_failure_that_names_a_line() -> None:
    def finding(severity: Outcome, where: Frame | None = None) -> Finding:
        return Finding(
            check="x",
            severity=severity,
            metric="m",
            unit="B",
            current=1,
            message=severity.value,
            where=where,
        )

    line = Frame("f", "app.py", 3)
    flag, fail, placed = (
        finding(Outcome.FLAG, line),
        finding(Outcome.FAIL),
        finding(Outcome.FAIL, line),
    )
    assert merge.worst_finding([flag, fail, placed]) is placed
    assert merge.worst_finding([flag, fail]) is fail
    assert merge.worst_finding([flag]) is flag
    assert merge.worst_finding([]) is None


def test_a_real_report_parses() -> None:
    assert merge.REPORT_VERSION == gate.report.json.REPORT_VERSION
    report = parsed(leak_doc())
    assert (report.scenario, report.environment, report.verdict.value) == ("demo", ENV, "fail")
    assert (report.shape, report.compared_runs, len(report.findings)) == ("leak", 3, 8)
    assert report.worst is not None and report.worst.metric == "site growth per request"
    assert report.worst.where == Frame("__call__", "examples/demo_service/app.py", 54)
    assert report.result == "memgate-out/demo/result.json"


def bad_report(change: Any) -> Any:
    data = leak_doc()
    return change(data) if callable(change) else change


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([1, 2], "not a memgate report.json (no integer report_version)"),
        ({"verdict": "pass"}, "not a memgate report.json (no integer report_version)"),
        ({"report_version": True}, "not a memgate report.json (no integer report_version)"),
        (
            {"report_version": 2},
            "report_version 2 is newer than this memgate understands (1); upgrade memgate",
        ),
        ({"report_version": 0}, "report_version 0 is not a memgate report version"),
        (
            {"schema_version": 2, "scenario": {}},
            "a result.json, not a report.json: compare it with its baselines first"
            " (memgate report RESULT.json --format json --out report.json)",
        ),
        (
            {"merge_version": 1, "verdict": "pass"},
            "a merged report: give the report.json files it was merged from",
        ),
        (
            lambda d: d | {"verdict": "maybe"},
            "verdict: Input should be 'pass', 'flag' or 'fail'",
        ),
        (lambda d: {k: v for k, v in d.items() if k != "run"}, "run: Field required"),
        (
            lambda d: d | {"findings": [dict(d["findings"][0], severity="loud")]},
            "findings.0.severity: Input should be 'flag' or 'fail'",
        ),
        (
            lambda d: d | {"verdict": "pass"},
            "verdict 'pass' does not match its findings (which make it 'fail')",
        ),
        (
            lambda d: d | {"verdict": "flag", "findings": []},
            "verdict 'flag' does not match its findings (which make it 'pass')",
        ),
    ],
)
def test_bad_reports_are_named_in_one_line(data: Any, reason: str) -> None:
    with pytest.raises(ReportError) as caught:
        parse_report(bad_report(data), source="art/x/report.json")
    assert caught.value.bad == BadInput("art/x/report.json", reason)
    assert str(caught.value) == f"art/x/report.json: {reason}"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes"),
        ("", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('{"report_version": 2}', "report_version 2 is newer than this memgate understands"),
    ],
)
def test_a_bad_file_exits_2_with_one_line_naming_it(
    tmp_path: Path, capsys, content: str, reason: str
) -> None:
    good = write(tmp_path / "a", doc("a", "pass"))
    bad = write(tmp_path / "b", content)
    assert main(["merge", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"memgate: error: {bad}: {reason}"), err


def test_a_missing_file_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["merge", str(tmp_path / "nope.json")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"memgate: error: {tmp_path / 'nope.json'}: no such file or folder\n"
    first = captured.out.splitlines()[0]
    assert first == "memgate merge: ERROR (0 scenarios; 1 input could not be merged)"


def test_two_reports_of_one_scenario_and_environment_are_an_error(tmp_path: Path) -> None:
    first = write(tmp_path / "one" / "demo", doc("demo", "pass"))
    second = write(tmp_path / "two" / "demo", doc("demo", "fail"))
    other_env = write(tmp_path / "three" / "demo", doc("demo", "pass", env="Darwin-arm64"))
    merged = collect([tmp_path])
    assert merged.verdict is Outcome.ERROR
    # Both are shown (neither hides the other), and the second is named with the first.
    assert [(r.scenario, r.verdict.value) for r in merged.reports] == [
        ("demo", "fail"),
        ("demo", "pass"),
        ("demo", "pass"),
    ]
    assert merged.errors == (
        BadInput(
            str(second),
            f"scenario 'demo' on {ENV} is also in {first}: give each scenario and environment"
            " one report",
        ),
    )
    assert other_env.exists()


def test_one_file_named_twice_is_taken_once(tmp_path: Path) -> None:
    path = write(tmp_path / "demo", doc("demo", "flag"))
    merged = collect([tmp_path, path, tmp_path / "demo" / ".." / "demo" / "report.json"])
    assert (len(merged.reports), merged.errors) == (1, ())
    assert merged.verdict is Outcome.FLAG


def test_folders_are_searched_and_unfinished_checks_found(tmp_path: Path) -> None:
    """As actions/download-artifact leaves them: one folder per artifact."""
    write(tmp_path / "memgate-api" / "api", doc("api", "pass"))
    write(tmp_path / "memgate-demo" / "demo", doc("demo", "fail"))
    write(tmp_path / "memgate-demo" / "demo", "{}", name="result.json")  # beside its report
    write(tmp_path / "memgate-soak" / "soak", "it died", name="service.log")
    (tmp_path / "empty").mkdir()
    merged = collect([tmp_path / name for name in ("memgate-api", "memgate-demo", "memgate-soak")])
    assert [r.scenario for r in merged.reports] == ["demo", "api"]
    assert [str(e) for e in merged.errors] == [
        f"{tmp_path / 'memgate-soak' / 'soak'}: service.log but no report.json: the check of"
        " this scenario did not finish (or it was `memgate run`, which does not compare)"
    ]
    assert collect([tmp_path / "empty"]).errors == (
        BadInput(str(tmp_path / "empty"), "no report.json in this folder or below"),
    )


def test_a_run_that_failed_is_an_error_even_beside_an_older_report(tmp_path: Path) -> None:
    write(tmp_path / "demo", doc("demo", "pass"))
    write(tmp_path / "demo", '{"reason": "service died"}', name="failure.json")
    merged = collect([tmp_path])
    assert merged.reports == ()
    assert [str(e) for e in merged.errors] == [
        f"{tmp_path / 'demo'}: failure.json: the run of this scenario could not be done"
    ]
    assert merged.verdict is Outcome.ERROR


def merged_three() -> merge.Merged:
    return merge.merge(
        [
            parsed(doc("api", "pass"), "art/api/report.json"),
            parsed(leak_doc(), "art/demo/report.json"),
            parsed(doc("soak", "flag", env="Darwin-arm64-py3.12"), "art/soak/report.json"),
        ]
    )


def test_terminal_summary() -> None:
    text = render_merged(merged_three(), width=400)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    assert lines[0] == "memgate merge: FAIL (3 scenarios: 1 fail, 1 flag, 1 pass)"
    rows = [line for line in lines if line.startswith(("demo ", "soak ", "api "))]
    assert rows[:3] == [
        f"demo {ENV} FAIL 8 site growth per request 256.5 B/request"
        " examples/demo_service/app.py:54 in __call__",
        "soak Darwin-arm64-py3.12 FLAG 1 this run's load or profile settings (scenario file or"
        " overrides) differ from some baseline runs': figures that depend on run length may"
        " not compare",
        f"api {ENV} PASS 0",
    ]
    # Then the findings of each scenario that did not pass, and only those.
    assert f"demo on {ENV}: FAIL (compared with 3 baseline runs; art/demo/report.json)" in lines
    assert any(line.startswith("soak on Darwin-arm64-py3.12: FLAG") for line in lines)
    assert not any(line.startswith("api on") for line in lines)


def test_markdown_summary() -> None:
    text = render_merged_markdown(merged_three())
    assert text.startswith("## ❌ memgate merge: FAIL\n\n3 scenarios: 1 fail, 1 flag, 1 pass.\n")
    assert (
        f"| `demo` | `{ENV}` | ❌ fail | 8 | site growth per request 256.5 B/request"
        " | `examples/demo_service/app.py:54` in `__call__` |"
    ) in text
    assert f"| `api` | `{ENV}` | ✅ pass | 0 |  |  |" in text
    assert f"### ❌ `demo` on `{ENV}`: FAIL" in text
    assert "### ⚠️ `soak` on `Darwin-arm64-py3.12`: FLAG" in text
    assert "`api` on" not in text
    assert "Could not be merged" not in text


@settings(max_examples=100, deadline=None)
@given(name=HOSTILE, env=HOSTILE, function=HOSTILE, reason=HOSTILE)
def test_hostile_names_keep_the_markdown_structure(
    name: str, env: str, function: str, reason: str
) -> None:
    """Pipes, backticks, newlines and markup in scenario, environment, function and file
    names: the same headings, rows of the same cells, items, as with plain names."""

    def summary(name: str, env: str, function: str, source: str) -> str:
        data = doc(name, "fail", env)
        for finding in data["findings"]:
            if finding["where"]:
                finding["where"] = {"function": function, "file": f"{function}.py", "line": 7}
        reports = [parsed(data, source), parsed(doc("plain", "pass"))]
        return render_merged_markdown(merge.merge(reports, [BadInput(source, reason)]))

    hostile = summary(name, env, function, f"art/{name}/report.json")
    plain = summary("demo", "env", "f", "art/demo/report.json")
    assert markdown_structure(hostile) == markdown_structure(plain)


def test_markdown_escapes_pipes_backticks_and_newlines() -> None:
    data = doc("a|b`c\nd # e", "fail", env="x|y")
    text = render_merged_markdown(merge.merge([parsed(data)]))
    row = next(line for line in text.split("\n") if line.startswith("| a"))
    assert row.startswith("| a\\|b\\`c d \\# e | `x\\|y` | ❌ fail | 8 |")
    assert len(table_cells(row)) == 6
    assert "### ❌ a\\|b\\`c d \\# e on `x|y`: FAIL" in text


def test_json_summary() -> None:
    data = json.loads(render_merged_json(merged_three()))
    assert (data["merge_version"], data["verdict"]) == (1, "fail")
    assert data["counts"] == {"pass": 1, "flag": 1, "fail": 1}
    assert [s["scenario"] for s in data["scenarios"]] == ["demo", "soak", "api"]
    demo = data["scenarios"][0]
    assert (demo["environment"], demo["report"], demo["compared_runs"]) == (
        ENV,
        "art/demo/report.json",
        3,
    )
    worst_one = demo["findings"][demo["worst_finding"]]
    assert worst_one == leak_doc()["findings"][6]  # as report.json has it
    assert data["scenarios"][2]["worst_finding"] is None
    broken = merge.merge([], [BadInput("x.json", "not valid JSON")])
    assert json.loads(render_merged_json(broken))["errors"] == [
        {"source": "x.json", "reason": "not valid JSON"}
    ]


def test_annotations_one_per_scenario_and_level() -> None:
    merged = merge.merge(merged_three().reports, [BadInput("x.json", "not valid JSON")])
    lines = runner_lines(render_annotations(annotate_merged(merged)))
    back = [parse_command(line) for line in lines]
    assert [(name, props["title"]) for name, props, _ in back] == [
        ("error", f"memgate demo ({ENV}): memory regression (7 findings)"),
        ("warning", f"memgate demo ({ENV}): memory flag"),
        ("warning", "memgate soak (Darwin-arm64-py3.12): memory flag"),
        ("error", "memgate: error"),
    ]
    assert all("file" not in props for _, props, _ in back)
    assert back[0][2].endswith("(at examples/demo_service/app.py:54 in __call__)")
    assert back[-1][2] == "x.json: not valid JSON"


@pytest.mark.parametrize(
    ("verdicts", "args", "code"),
    [
        (["pass", "pass"], [], 0),
        (["pass", "flag"], [], 0),
        (["pass", "flag"], ["--fail-on", "flag"], 1),
        (["flag", "fail"], [], 1),
    ],
)
def test_exit_code_is_check_s(tmp_path: Path, capsys, verdicts, args, code) -> None:
    paths = [str(write(tmp_path / v / str(i), doc(f"s{i}", v))) for i, v in enumerate(verdicts)]
    assert main(["merge", *paths, *args]) == code
    assert capsys.readouterr().err == ""


def test_out_writes_the_file_and_prints_nothing(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "demo", leak_doc())
    out = tmp_path / "merged.json"
    assert main(["merge", str(path), "--format", "json", "--out", str(out)]) == 1
    assert json.loads(out.read_text())["verdict"] == "fail"
    assert capsys.readouterr() == ("", "")
    assert main(["merge", str(path), "--out", str(tmp_path / "no" / "such" / "dir")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_html_is_not_a_merge_format(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["merge", str(tmp_path), "--format", "html"])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_inside_actions_the_summary_is_appended_and_the_verdict_set(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    output.write_text("")
    summary.write_text("## earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    good = write(tmp_path / "art" / "demo", leak_doc())
    assert main(["merge", str(good)]) == 1
    assert read_file_commands(output.read_text()) == {"verdict": "fail"}
    text = summary.read_text()
    assert text.startswith("## earlier step\n## ❌ memgate merge: FAIL\n")
    assert text.count("memgate merge:") == 1
    # What it printed was between stop-commands; it placed no annotations of its own.
    printed = capsys.readouterr().out.splitlines()
    commands = [parse_command(line)[0] for line in printed if line.startswith("::")]
    assert commands[0] == "stop-commands" and commands[1:] == [printed[0].split("::")[2]]
    assert printed[1] == "memgate merge: FAIL (1 scenario: 1 fail)"
    # A bad input: the verdict is error, named in the summary.
    output.write_text("")
    bad = write(tmp_path / "art" / "broken", leak_doc() | {"report_version": 9})
    assert main(["merge", str(tmp_path / "art")]) == 2
    assert read_file_commands(output.read_text()) == {"verdict": "error"}
    assert f"- `{bad}`: report\\_version 9 is newer" in summary.read_text()


def test_a_merged_report_names_the_service() -> None:
    doc = {
        "report_version": 1,
        "scenario": {"name": "shop", "path": "shop.toml", "sha256": "", "service": "worker"},
        "verdict": "pass",
        "compared_runs": 3,
        "findings": [],
        "run": {"shape": "flat", "provenance": {"env_key": "linux"}},
    }
    assert parse_report(doc, source="report.json").scenario == "shop/worker"
    doc["scenario"] = {"name": "shop", "path": "shop.toml", "sha256": ""}
    assert parse_report(doc, source="report.json").scenario == "shop"
