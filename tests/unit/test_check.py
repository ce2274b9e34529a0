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


def test_record_says_what_it_did_with_the_history(tmp_path: Path) -> None:
    from gate.check import AlreadyRecorded, Recorded, record
    from gate.summary import summarize
    from tests.support import make_result

    store = BaselineStore(tmp_path)
    runs = [make_result(leak) for leak in (0, 1, 2)]
    ids = [summarize(run).run_id for run in runs]
    path = tmp_path / "demo.json"
    assert record(runs[0], store, keep=2) == Recorded(ids[0], path, 1)
    assert record(runs[0], store, keep=2) == AlreadyRecorded(ids[0], path, 1)
    assert record(runs[1], store, keep=2) == Recorded(ids[1], path, 2)
    assert record(runs[2], store, keep=2) == Recorded(ids[2], path, 2, dropped=1)


class Told:
    """A check's observer that keeps what it was told."""

    show_capture_progress = False

    def __init__(self) -> None:
        self.told: list[object] = []

    def phase(self, name: str) -> None:
        pass

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        pass

    def kept(self, previous: object) -> None:
        self.told.append(previous)

    def ran(self, ran: object) -> None:
        pass

    def judged(self, report: object) -> None:
        pass

    def reported(self, files: object) -> None:
        pass

    def recorded(self, recording: object) -> None:
        self.told.append(recording)

    def concluded(self, check: object) -> None:
        pass


@pytest.fixture
def fake_runs(monkeypatch):
    """Runs that write a service log and measure the next of the results appended."""
    import gate.run.orchestrate
    from gate.model import RunResult
    from gate.run.orchestrate import Runs

    results: list[RunResult] = []
    done: list[RunResult] = []

    def run_all(scenario, out_dir: Path, observer=None, **_: object) -> Runs:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "service.log").write_text(f"run {len(done) + 1}")
        done.append(results.pop(0))
        return Runs([done[-1]])

    monkeypatch.setattr(gate.run.orchestrate, "run_all", run_all)
    return results


def test_a_check_keeps_the_previous_run_and_records_only_what_did_not_fail(
    write_scenario, tmp_path: Path, fake_runs
) -> None:
    from gate.check import FailedNotRecorded, Recorded, check_scenario, open_check
    from gate.layout import Kept
    from gate.summary import summarize
    from tests.support import make_result

    clean, leak = make_result(0), make_result(100)
    fake_runs += [clean, leak]
    path = write_scenario(MINIMAL, "demo.toml")
    options = RunOptions(out=tmp_path / "out", record=True, baselines=tmp_path / "b")
    history = tmp_path / "b" / "demo.json"
    out = tmp_path / "out" / "demo"

    told = Told()
    first = check_scenario(open_check(path, options), options, told)
    assert first.verdict is Outcome.FLAG  # no baseline yet
    assert told.told == [Recorded(summarize(clean).run_id, history, 1)]
    assert first.checked[0].recording == told.told[0]

    told = Told()
    second = check_scenario(open_check(path, options), options, told)
    assert second.verdict is Outcome.FAIL
    assert told.told == [
        Kept(tmp_path / "out" / "demo.previous"),
        FailedNotRecorded(history, out / "result.json", tmp_path / "b"),
    ]
    assert len(BaselineStore(tmp_path / "b").load("demo").runs) == 1  # type: ignore[union-attr]
    assert (tmp_path / "out" / "demo.previous" / "service.log").read_text() == "run 1"
    assert (out / "service.log").read_text() == "run 2"
    assert (out / "report.json").is_file()


def test_without_record_a_check_says_nothing_of_the_history(
    write_scenario, tmp_path: Path, fake_runs
) -> None:
    from gate.check import check_scenario, open_check
    from tests.support import make_result

    fake_runs.append(make_result(0))
    path = write_scenario(MINIMAL, "demo.toml")
    options = RunOptions(out=tmp_path / "out", baselines=tmp_path / "b")
    told = Told()
    done = check_scenario(open_check(path, options), options, told)
    assert told.told == [] and done.checked[0].recording is None
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("relaxed", [False, True])
def test_the_runs_env_match_setting_reaches_the_verdict(
    leak, tmp_path: Path, relaxed: bool
) -> None:
    """A history recorded on a machine of 8 CPUs, a check on 2: another environment,
    unless the run's scenario lets the CPU count differ (``[gate] env_match``)."""
    import dataclasses

    from gate.environment import ENV_PARTS

    store = BaselineStore(tmp_path)
    elsewhere = dataclasses.replace(
        leak,
        provenance=dataclasses.replace(
            leak.provenance, env_key="Linux-x86_64-py3.11-memray1.20-8cpu-agent"
        ),
    )
    store.accept(elsewhere, reason="recorded on a laptop", who="test")
    settings = dict(leak.settings)
    if relaxed:
        settings["gate"] = {
            **settings.get("gate", {}),
            "env_match": [p for p in ENV_PARTS if p != "cpus"],
        }
    here = dataclasses.replace(
        leak,
        settings=settings,
        provenance=dataclasses.replace(
            leak.provenance, env_key="Linux-x86_64-py3.11-memray1.20-2cpu-agent"
        ),
    )
    report, _ = judge(here, store, BudgetSpec(), Outcome.FAIL)
    flagged = [f for f in report.decision.findings if "another environment" in f.message]
    assert bool(flagged) is not relaxed, report.decision.findings
    if flagged:
        assert "cpus" in flagged[0].message


def test_with_auto_a_recording_check_records_both_kinds_and_a_pull_request_compares_alike(
    write_scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``capture = "auto"``: a check that records is asked to trace after the counted run,
    and records both; a pull request's traced run is then compared with the traced runs
    alone, with no "another environment" flag (it flagged every escalated check against
    a history of counted runs only)."""
    import dataclasses

    import gate.run.orchestrate
    from gate.check import Recorded, check_scenario, open_check
    from gate.run.orchestrate import Runs
    from gate.summary import summarize
    from tests.support import make_result

    traced = make_result(0)
    counted = dataclasses.replace(
        traced,
        provenance=dataclasses.replace(
            traced.provenance,
            env_key=f"{traced.provenance.env_key}-counters",
            started_at="2026-11-21T07:01:00+00:00",
        ),
    )
    later = dataclasses.replace(traced.provenance, started_at="2026-11-22T07:00:00+00:00")
    asked: list[bool] = []

    def run_all(scenario, out_dir: Path, observer=None, *, trace_always: bool = False) -> Runs:
        asked.append(trace_always)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "service.log").write_text("")
        if not trace_always:  # a later run of the same code
            return Runs([dataclasses.replace(traced, provenance=later)])
        (out_dir / "counted").mkdir()  # the counted run's folder, as run_once makes it
        return Runs([traced], [counted])

    monkeypatch.setattr(gate.run.orchestrate, "run_all", run_all)
    path = write_scenario(MINIMAL, "demo.toml")
    options = RunOptions(out=tmp_path / "out", record=True, baselines=tmp_path / "b")
    told = Told()
    done = check_scenario(open_check(path, options), options, told)
    history = tmp_path / "b" / "demo.json"
    assert told.told == [
        Recorded(summarize(traced).run_id, history, 1),
        Recorded(summarize(counted).run_id, history, 2, label="counted run"),
    ]
    assert done.checked[0].counted == told.told[1]
    assert (tmp_path / "out" / "demo" / "counted" / "result.json").is_file()

    pull_request = dataclasses.replace(options, record=False, out=tmp_path / "pr")
    check = check_scenario(open_check(path, pull_request), pull_request, Told())
    decision = check.checked[0].report.decision
    assert asked == [True, False]
    assert decision.compared_runs == 1  # the traced run alone
    assert not any("another environment" in f.message for f in decision.findings)


def test_a_counted_run_that_fails_its_check_is_not_recorded_and_says_which_run() -> None:
    from gate.check import FailedNotRecorded
    from gate.console import recording_line

    line = recording_line(
        FailedNotRecorded(
            Path("b/demo.json"), Path("out/counted/result.json"), Path("b"), "counted run"
        )
    )
    assert line.startswith("not recorded in b/demo.json: the counted run failed its check")
    assert "memgate baseline accept out/counted/result.json" in line


def test_with_auto_a_counted_run_is_not_recorded_beside_a_traced_run_that_failed(
    write_scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import gate.run.orchestrate
    from gate.check import FailedNotRecorded, check_scenario, open_check
    from gate.run.orchestrate import Runs
    from tests.support import make_result

    traced = make_result(300)  # a certain leak, with no history: fails
    counted = dataclasses.replace(
        make_result(0),
        provenance=dataclasses.replace(
            traced.provenance, env_key=f"{traced.provenance.env_key}-counters"
        ),
    )

    def run_all(scenario, out_dir: Path, observer=None, *, trace_always: bool = False) -> Runs:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "service.log").write_text("")
        (out_dir / "counted").mkdir()
        return Runs([traced], [counted])

    monkeypatch.setattr(gate.run.orchestrate, "run_all", run_all)
    path = write_scenario(MINIMAL, "demo.toml")
    options = RunOptions(out=tmp_path / "out", record=True, baselines=tmp_path / "b")
    told = Told()
    done = check_scenario(open_check(path, options), options, told)
    assert [type(t) for t in told.told] == [FailedNotRecorded]
    assert done.checked[0].counted is None
    assert BaselineStore(tmp_path / "b").load("demo") is None
