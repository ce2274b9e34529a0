"""``memgate merge``: report.json files of several checks -> one summary, one verdict.

The summary's formats are tested with the other reports' (test_report,
test_report_terminal), the command with the others (test_cli_commands)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import gate.report.json
from gate import merge
from gate.merge import BadInput, ReportError, collect, parse_report
from gate.model import Frame
from gate.outcome import Outcome
from gate.verdict import Finding
from tests.support import ENV, doc, leak_doc, parsed, write


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
            baseline=None,
            spread=None,
            limit=None,
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


def test_every_field_merge_reads_is_one_the_report_writer_writes() -> None:
    # The reader's types are a part of the writer's: a field renamed or dropped in
    # ReportDoc, without REPORT_VERSION bumped, would leave merge reading nothing.
    from typing import get_type_hints

    from gate.model import Provenance, ScenarioRef
    from gate.report.documents import ReportDoc, RunDoc

    pairs = [
        (merge._ReportDoc, ReportDoc),
        (merge._RunDoc, RunDoc),
        (merge._ScenarioDoc, ScenarioRef),
        (merge._ProvenanceDoc, Provenance),
    ]
    for reader, writer in pairs:
        written = get_type_hints(writer)
        assert {f.name for f in dataclasses.fields(reader)} <= set(written), (reader, writer)
    assert merge.REPORT_VERSION is gate.report.json.REPORT_VERSION


def test_a_real_report_parses() -> None:
    report = parsed(leak_doc())
    assert (report.scenario, report.environment, report.verdict.value) == ("demo", ENV, "fail")
    assert (report.shape, report.compared_runs, len(report.findings)) == ("leak", 3, 7)
    assert report.worst is not None and report.worst.metric == "heap growth per request"
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
            lambda d: (
                d | {"findings": [{k: v for k, v in d["findings"][0].items() if k != "unit"}]}
            ),
            "findings.0.unit: Field required",
        ),
        (
            lambda d: d | {"compared_runs": -1},
            "compared_runs: -1 is negative",
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


def test_a_run_moved_aside_by_the_next_is_not_a_report_of_the_matrix(tmp_path: Path) -> None:
    # A check run twice into one folder keeps the first in NAME.previous.
    write(tmp_path / "demo", doc("demo", "pass"))
    write(tmp_path / "demo.previous", doc("demo", "fail"))
    write(tmp_path / ".demo.previous.x1y2.old", doc("demo", "fail"))
    merged = collect([tmp_path])
    assert (merged.verdict, merged.errors) == (Outcome.PASS, ())
    assert [r.verdict.value for r in merged.reports] == ["pass"]


def test_an_auto_runs_counted_run_is_not_an_unfinished_check(tmp_path: Path) -> None:
    """``capture = "auto"`` with several services: the counted run's service folders
    (``counted/NAME``, a log and no report) lie beside the traced run that was judged."""
    write(tmp_path / "shop" / "api", doc("shop", "pass"))
    (tmp_path / "shop" / "counted" / "api").mkdir(parents=True)
    (tmp_path / "shop" / "counted" / "api" / "service.log").write_text("")
    merged = collect([tmp_path])
    assert (merged.verdict, merged.errors) == (Outcome.PASS, ())
