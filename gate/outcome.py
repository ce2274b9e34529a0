"""The one outcome of memgate's judgements: pass, flag, fail, or error.

A finding is a flag or a failure; a check's verdict is the worst of its findings (pass
when there are none); several checks' verdict is the worst of theirs, and ``error`` when
one of them could not be judged. The exit code of an outcome is decided here too.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

from gate.errors import ExitCode


class Outcome(enum.StrEnum):
    PASS = "pass"
    FLAG = "flag"
    """A warning: the build passes unless ``--fail-on flag``."""
    FAIL = "fail"
    """A memory regression."""
    ERROR = "error"
    """What could not be judged (an input that could not be read, a run that could not
    measure); never a finding's or one check's verdict."""

    @staticmethod
    def worst(outcomes: Iterable[Outcome]) -> Outcome:
        """The worst of ``outcomes``; ``error`` for none at all: judging nothing is never
        a pass."""
        seen = set(outcomes)
        return next((o for o in WORST_FIRST if o in seen), Outcome.ERROR)

    @staticmethod
    def from_findings(findings: Iterable[HasSeverity]) -> Outcome:
        """A check's verdict: its worst finding's severity, or pass with none."""
        return Outcome.worst([Outcome.PASS, *(f.severity for f in findings)])

    def exit_code(self, fail_on: Outcome) -> ExitCode:
        """A failure is a regression, and so is a flag when ``fail_on`` is flag; an error
        is bad input (what a check could not judge raised its own code before this)."""
        if self is Outcome.ERROR:
            return ExitCode.BAD_INPUT
        if self is Outcome.FAIL or (self is Outcome.FLAG and fail_on is Outcome.FLAG):
            return ExitCode.REGRESSION
        return ExitCode.PASS


WORST_FIRST = (Outcome.ERROR, Outcome.FAIL, Outcome.FLAG, Outcome.PASS)
FAIL_ON = (Outcome.FAIL, Outcome.FLAG)
"""The outcomes ``--fail-on`` may name: what fails the build besides a failure."""


class HasSeverity(Protocol):
    @property
    def severity(self) -> Outcome: ...
