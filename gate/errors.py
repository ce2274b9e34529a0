"""One exception root, and the exit codes it maps to (decided here, used by the CLI)."""

from __future__ import annotations

import enum
from pathlib import Path


class ExitCode(enum.IntEnum):
    PASS = 0
    """The run measured and nothing failed (flags included unless asked to fail on them)."""
    REGRESSION = 1
    """A memory regression was found."""
    BAD_INPUT = 2
    """Bad usage or bad input: scenario, baseline, result or capture file."""
    RUN_FAILED = 3
    """The run could not be done: service did not start or died, no successful requests."""


class MemgateError(Exception):
    """Root of memgate's errors; ``str(error)`` is the one line the user sees."""

    exit_code = ExitCode.BAD_INPUT


class InputError(MemgateError):
    """Bad usage or a bad file given to memgate."""

    exit_code = ExitCode.BAD_INPUT


class RunError(MemgateError):
    """The run itself could not be done; what was captured so far is kept."""

    exit_code = ExitCode.RUN_FAILED
    kept: Path | None = None
    """``failure.json`` of the run, beside everything it left, once written."""
