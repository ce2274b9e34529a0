"""gate/console.py: the one-line accounts of a check's recording and of its output folder."""

from __future__ import annotations

from pathlib import Path

from gate.check import AlreadyRecorded, FailedNotRecorded, Recorded
from gate.console import accept_command, previous_line, recording_line
from gate.layout import Kept, NotKept


def test_a_recorded_run_says_where_and_how_many_runs_the_history_keeps() -> None:
    one = Recorded("3f2a9c0d1e2b4a5c", Path("baselines/demo.json"), 1)
    assert recording_line(one) == (
        "recorded: run 3f2a9c0d1e2b4a5c appended to baselines/demo.json (1 run)"
    )
    full = Recorded("3f2a9c0d1e2b4a5c", Path("baselines/demo/api.json"), 20, dropped=1)
    assert recording_line(full) == (
        "recorded: run 3f2a9c0d1e2b4a5c appended to baselines/demo/api.json"
        " (20 runs; 1 older run dropped)"
    )


def test_a_run_already_in_its_history_is_not_recorded_twice() -> None:
    again = AlreadyRecorded("3f2a9c0d1e2b4a5c", Path("baselines/demo.json"), 4)
    assert recording_line(again) == (
        "not recorded: run 3f2a9c0d1e2b4a5c is already in baselines/demo.json (4 runs)"
    )


def test_a_failing_run_names_the_command_that_accepts_it() -> None:
    failed = FailedNotRecorded(
        Path("/tmp/b/demo.json"), Path("/tmp/out/demo/result.json"), Path("/tmp/b")
    )
    assert recording_line(failed) == (
        "not recorded in /tmp/b/demo.json: the check failed, and a failing run enters the"
        " history only when accepted: memgate baseline accept /tmp/out/demo/result.json"
        " --baselines /tmp/b --reason 'why this growth is expected'"
    )


def test_the_accept_command_is_one_a_shell_runs_as_it_is() -> None:
    result = Path("memgate-out/my demo/result.json")
    assert accept_command(result, Path("baselines")) == (
        "memgate baseline accept 'memgate-out/my demo/result.json'"
        " --reason 'why this growth is expected'"
    )
    assert (
        accept_command(result, Path("ci baselines"))
        .split(" --reason ")[0]
        .endswith(" --baselines 'ci baselines'")
    )


def test_the_previous_run_s_folder_is_named_or_why_it_was_not_moved() -> None:
    assert previous_line(Kept(Path("memgate-out/demo.previous"))) == (
        "previous run kept in memgate-out/demo.previous"
    )
    left = NotKept(Path("memgate-out/demo"), "memgate-out/demo is a symbolic link")
    assert previous_line(left) == (
        "previous run not kept: memgate-out/demo is a symbolic link;"
        " this run writes into memgate-out/demo, over the files there"
    )
