"""gate/check.py: judging a run against its history and budgets, without the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.baseline import BaselineStore
from gate.check import RunOptions, judge, judge_file, parse_env_pair
from gate.errors import ExitCode
from gate.outcome import Outcome
from gate.result import read_result
from gate.scenario import BudgetSpec
from tests.support import MINIMAL

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def leak() -> object:
    return read_result(FIXTURES / "result-v1-leak256.json")


def test_a_leak_with_no_history_fails_and_says_there_is_none(leak, tmp_path: Path) -> None:
    report, code = judge(leak, BaselineStore(tmp_path), BudgetSpec(), Outcome.FAIL)
    assert (report.decision.verdict, code) == (Outcome.FAIL, ExitCode.REGRESSION)
    assert report.decision.compared_runs == 0
    assert any(f.message.startswith("no baseline yet") for f in report.decision.findings)


def test_a_recorded_run_is_left_out_of_its_own_comparison(leak, tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.record(leak)
    report, _ = judge(leak, store, BudgetSpec(), Outcome.FAIL)
    assert report.decision.compared_runs == 0


def test_an_accepted_run_stays_in_as_the_reference(leak, tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.accept(leak, reason="a cache was added on purpose", who="test")
    report, code = judge(leak, store, BudgetSpec(), Outcome.FAIL)
    assert report.decision.compared_runs == 1
    assert (report.decision.verdict, code) == (Outcome.PASS, ExitCode.PASS)


def test_budgets_are_the_ones_given(leak, tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.accept(leak, reason="a cache was added on purpose", who="test")
    tight = BudgetSpec(max_growth_per_request=16.0)
    report, code = judge(leak, store, tight, Outcome.FAIL)
    assert [f.check for f in report.decision.findings] == ["budget"]
    assert code is ExitCode.REGRESSION
    # A result read from a file is judged with the budgets it was run with (none here).
    assert judge_file(leak, store, Outcome.FAIL)[0].decision.verdict is Outcome.PASS


def test_env_pairs() -> None:
    assert parse_env_pair("A=b=c") == ("A", "b=c")
    assert parse_env_pair("A=") == ("A", "")
    for bad in ("A", "=b", ""):
        with pytest.raises(ValueError, match="expected KEY=VALUE"):
            parse_env_pair(bad)


def test_default_options_are_a_check_that_fails_on_failures() -> None:
    options = RunOptions()
    assert (options.record, options.fail_on, options.baselines) == (
        False,
        Outcome.FAIL,
        Path("baselines"),
    )


def test_two_scenarios_of_one_name_in_one_check_are_refused(write_scenario, tmp_path: Path) -> None:
    from gate.check import open_check
    from gate.errors import InputError

    first = write_scenario(MINIMAL, "demo.toml")
    (tmp_path / "copy").mkdir()
    second = tmp_path / "copy" / "demo.toml"
    second.write_text(first.read_text())
    (tmp_path / "copy" / "locustfile.py").write_text((first.parent / "locustfile.py").read_text())
    options = RunOptions(baselines=tmp_path / "baselines")
    scenario = open_check(first, options, {})
    assert scenario.name == "demo"
    with pytest.raises(InputError) as caught:
        open_check(second, options, {scenario.name: first})
    assert str(caught.value).startswith(f"{second}: scenario 'demo' is also {first}'s")
