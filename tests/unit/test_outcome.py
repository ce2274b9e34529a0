"""gate/outcome.py: one outcome for findings, verdicts, merges and exit codes."""

from __future__ import annotations

import dataclasses

import pytest

from gate.errors import ExitCode
from gate.outcome import WORST_FIRST, Outcome


@dataclasses.dataclass(frozen=True)
class Found:
    severity: Outcome


def test_the_worst_outcome_wins() -> None:
    assert Outcome.worst([Outcome.PASS, Outcome.FLAG, Outcome.PASS]) is Outcome.FLAG
    assert Outcome.worst([Outcome.FLAG, Outcome.FAIL]) is Outcome.FAIL
    assert Outcome.worst([Outcome.FAIL, Outcome.ERROR, Outcome.PASS]) is Outcome.ERROR
    assert [Outcome.worst([o]) for o in WORST_FIRST] == list(WORST_FIRST)


def test_judging_nothing_is_never_a_pass() -> None:
    assert Outcome.worst([]) is Outcome.ERROR


def test_a_verdict_is_its_worst_finding_or_a_pass() -> None:
    assert Outcome.from_findings([]) is Outcome.PASS
    assert Outcome.from_findings([Found(Outcome.FLAG)]) is Outcome.FLAG
    assert Outcome.from_findings([Found(Outcome.FLAG), Found(Outcome.FAIL)]) is Outcome.FAIL


@pytest.mark.parametrize(
    ("outcome", "fail_on", "code"),
    [
        (Outcome.PASS, Outcome.FAIL, ExitCode.PASS),
        (Outcome.FLAG, Outcome.FAIL, ExitCode.PASS),
        (Outcome.FLAG, Outcome.FLAG, ExitCode.REGRESSION),
        (Outcome.FAIL, Outcome.FAIL, ExitCode.REGRESSION),
        (Outcome.FAIL, Outcome.FLAG, ExitCode.REGRESSION),
        (Outcome.ERROR, Outcome.FAIL, ExitCode.BAD_INPUT),
        (Outcome.PASS, Outcome.FLAG, ExitCode.PASS),
    ],
)
def test_exit_codes(outcome: Outcome, fail_on: Outcome, code: ExitCode) -> None:
    assert outcome.exit_code(fail_on) is code


def test_the_worst_exit_code_of_several() -> None:
    assert ExitCode.worst([0, 1, 3, 2]) is ExitCode.BAD_INPUT
    assert ExitCode.worst([0, 1, 3]) is ExitCode.RUN_FAILED
    assert ExitCode.worst([0, 1]) is ExitCode.REGRESSION
    assert ExitCode.worst([]) is ExitCode.PASS
