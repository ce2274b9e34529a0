"""The commands through ``gate.cli.main``, in-process: the offline ones (compare, baseline,
merge), and check with its runs faked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gate.cli import main
from gate.model import Frame
from gate.result import write_result
from tests.support import (
    MINIMAL,
    doc,
    leak_doc,
    make_result,
    parse_command,
    read_file_commands,
    write,
)


def result_file(tmp_path: Path, **settings: object) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    result = make_result()
    result = dataclasses.replace(result, settings={**result.settings, **settings})
    path = tmp_path / "result.json"
    write_result(result, path)
    return path


def test_record_show_compare(tmp_path: Path, capsys) -> None:
    recorded = result_file(tmp_path / "one")
    path = result_file(tmp_path, users=5)  # another run (another run id) of the same scenario
    baselines = str(tmp_path / "b")
    # The fixture leaks: with no history it fails its check, and a failing run enters the
    # history only when accepted, with a reason (it was recorded, and no audit line said so).
    assert main(["baseline", "record", str(recorded), "--baselines", baselines]) == 1
    refused = capsys.readouterr().out
    assert refused.startswith(f"not recorded in {baselines}/demo.json: the check failed")
    assert f"memgate baseline accept {recorded} --baselines {baselines} --reason" in refused
    assert not (tmp_path / "b" / "demo.json").exists()
    accept = ["baseline", "accept", str(recorded), "--baselines", baselines]
    assert main([*accept, "--reason", "the fixture leaks by design"]) == 0
    assert main(["baseline", "show", "demo", "--baselines", baselines]) == 0
    # Another run that leaks as the accepted one did, compared by rate: it passes, and
    # so it is recorded.
    assert main(["compare", str(path), "--baselines", baselines]) == 0
    out = capsys.readouterr().out
    assert "baseline: demo" in out
    assert "memgate check: demo: PASS (compared with 1 baseline run)" in out
    assert main(["baseline", "record", str(path), "--baselines", baselines]) == 0
    assert capsys.readouterr().out.endswith(f"appended to {baselines}/demo.json (2 runs)\n")
    # Recorded again: said, and the history is left as it was.
    assert main(["baseline", "record", str(path), "--baselines", baselines]) == 0
    again = capsys.readouterr().out
    assert again.startswith("not recorded: run ")
    assert again.endswith(f" is already in {baselines}/demo.json (2 runs)\n")


def test_a_recorded_run_is_not_compared_with_itself(tmp_path: Path, capsys) -> None:
    accepted = result_file(tmp_path / "one")
    path = result_file(tmp_path, users=5)
    baselines = str(tmp_path / "b")
    accept = ["baseline", "accept", str(accepted), "--baselines", baselines, "--reason", "known"]
    assert main(accept) == 0
    assert main(["baseline", "record", str(path), "--baselines", baselines]) == 0
    # Of the history's 2 runs, the run itself is left out.
    assert main(["compare", str(path), "--baselines", baselines]) == 0
    assert "PASS (compared with 1 baseline run)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"gate": {"keep": 0}},
            "result.json: settings.gate.keep: Input should be greater than or equal to 2",
        ),
        ({"gate": 5}, "result.json: settings.gate: Input should be a valid dictionary"),
        (
            {"budgets": {"max_peak_heap": "lots"}},
            "result.json: settings.budgets.max_peak_heap: could not parse",
        ),
    ],
)
def test_bad_settings_in_a_result_are_bad_input(tmp_path: Path, capsys, settings, message) -> None:
    path = result_file(tmp_path, **settings)
    baselines = tmp_path / "b"
    assert main(["baseline", "record", str(path), "--baselines", str(baselines)]) == 2
    assert main(["compare", str(path), "--baselines", str(baselines)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("memgate: error: ") for line in err)
    assert message in err[0]
    assert not (baselines / "demo.json").exists()


def test_accept_needs_a_reason(tmp_path: Path, capsys) -> None:
    path = result_file(tmp_path)
    code = main(["baseline", "accept", str(path), "--reason", " ", "--baselines", str(tmp_path)])
    assert code == 2
    assert "--reason must say why" in capsys.readouterr().err


def test_show_without_history(tmp_path: Path, capsys) -> None:
    assert main(["baseline", "show", "demo", "--baselines", str(tmp_path)]) == 2
    assert "no baseline for scenario 'demo'" in capsys.readouterr().err


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


@pytest.mark.parametrize("variable", ["GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"])
def test_inside_actions_a_folder_for_a_workflow_file_is_a_warning_not_an_internal_error(
    variable: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    # It was "internal error: IsADirectoryError", exit 3, in place of the verdict's code.
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    monkeypatch.setenv(variable, str(folder))
    good = write(tmp_path / "art" / "demo", leak_doc())
    assert main(["merge", str(good)]) == 1  # the verdict's, a failure
    printed = capsys.readouterr().out.splitlines()
    (warning,) = [line for line in printed if line.startswith("memgate: warning:")]
    assert warning.startswith("memgate: warning: cannot write the ")
    assert warning.endswith(f"to {folder}: Is a directory")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["run"], "memgate run: error: the following arguments are required: scenario"),
        (["check", "--bogus", "x.toml"], "memgate: error: unrecognized arguments: --bogus"),
        (["compare", "r.json", "--fail-on", "pass"], "memgate compare: error: argument"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    captured = capsys.readouterr()
    (error,) = captured.err.splitlines()
    assert error.startswith(line) and captured.out == ""


@pytest.fixture
def checked_runs(monkeypatch, write_scenario, tmp_path: Path):
    """``memgate check --record`` in-process, of a scenario whose runs are faked: the
    list of runs to come (a result, or the error a run raises), and the arguments."""
    import gate.run.orchestrate

    runs: list[object] = []

    def run_all(scenario, out_dir: Path, observer=None, **_: object):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "service.log").write_text("")
        run = runs.pop(0)
        if isinstance(run, Exception):
            raise run
        return gate.run.orchestrate.Runs([run])

    monkeypatch.setattr(gate.run.orchestrate, "run_all", run_all)
    scenario = write_scenario(MINIMAL, "demo.toml")
    args = ["check", str(scenario), "--record", "--quiet", "--baselines", str(tmp_path / "b")]
    return runs, [*args, "--out", str(tmp_path / "out")]


def test_check_record_says_per_run_what_it_did(checked_runs, tmp_path: Path, capsys) -> None:
    from gate.errors import RunError

    runs, args = checked_runs
    runs += [make_result(0), make_result(100), RunError("the service died")]
    out, b = tmp_path / "out", tmp_path / "b"
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[-1].startswith("recorded: run ")
    assert first[-1].endswith(f" appended to {b / 'demo.json'} (1 run)")
    assert not [line for line in first if line.startswith("previous run")]
    assert main(args) == 1
    second = capsys.readouterr().out.splitlines()
    assert second[0] == f"previous run kept in {out / 'demo.previous'}"
    assert second[-1] == (
        f"not recorded in {b / 'demo.json'}: the check failed, and a failing run enters the"
        f" history only when accepted: memgate baseline accept {out / 'demo' / 'result.json'}"
        f" --baselines {b} --reason 'why this growth is expected'"
    )
    assert main(args) == 3
    third = capsys.readouterr()
    assert third.err == "memgate: error: the service died\n"
    assert third.out.splitlines() == [
        f"previous run kept in {out / 'demo.previous'}",
        f"not recorded: {args[1]}: its check could not be done (the error above)",
    ]


def test_inside_actions_the_summary_says_what_was_recorded(
    checked_runs, tmp_path: Path, monkeypatch, capsys
) -> None:
    summary = tmp_path / "summary.md"
    for name, value in [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_OUTPUT", str(tmp_path / "output")),
        ("GITHUB_STEP_SUMMARY", str(summary)),
    ]:
        monkeypatch.setenv(name, value)
    runs, args = checked_runs
    runs.append(make_result(0))
    assert main(args) == 0
    assert "\nrecorded: run " in summary.read_text()
    printed = capsys.readouterr().out
    assert printed.count("recorded: run ") == 1


def test_names_from_the_measured_code_reach_the_terminal_as_escapes(tmp_path: Path, capsys) -> None:
    # A function named with OSC 0 (the title), OSC 52 (the clipboard) and CSI 2J (clear
    # the screen) reached the terminal raw.
    hostile = "evil\x1b]0;pwned\x07\x1b]52;c;cm0gLXJm\x07\x1b[2J\u202e"
    result = make_result()
    site = dataclasses.replace(
        result.sites[0], user_frame=Frame(hostile, "app.py\x1b[2J", 54), stack=()
    )
    path = tmp_path / "result.json"
    write_result(dataclasses.replace(result, sites=(site, *result.sites[1:])), path)
    assert main(["compare", str(path), "--baselines", str(tmp_path / "b")]) == 1
    assert main(["report", str(path), "--baselines", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    # (The table's renderer drops the BEL itself.)
    assert "evil\\x1b]0;pwned\\x1b]52;c;cm0gLXJm\\x1b[2J\\u202e" in out
    assert "app.py\\x1b[2J:54 in evil" in out
    assert not {"\x1b", "\x07", "\u202e"} & set(out)


def test_each_command_is_summed_up_in_whole_sentences_in_the_top_help() -> None:
    # "merge" read "...into one summary and": the first line of a two-line sentence.
    from gate.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.choices and "merge" in a.choices]
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    assert set(helps) >= {"run", "check", "merge", "init"}
    for name, text in helps.items():
        assert text and text.endswith("."), (name, text)
    assert helps["merge"].endswith("into one summary and one verdict.")
