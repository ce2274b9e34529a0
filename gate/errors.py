"""One exception root, and the exit codes it maps to (decided here, used by the CLI)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
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

    @staticmethod
    def worst(codes: Iterable[int]) -> ExitCode:
        """One exit code for several scenarios: bad input, then a failed run, then a
        regression, then a pass."""
        seen = set(codes)
        worst_first = (ExitCode.BAD_INPUT, ExitCode.RUN_FAILED, ExitCode.REGRESSION)
        return next((code for code in worst_first if code in seen), ExitCode.PASS)


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


def error_text(exc: MemgateError) -> str:
    """The error's line, pointing at what a failed run kept."""
    kept = getattr(exc, "kept", None)
    return f"{exc}; what the run saw is in {kept}" if kept else str(exc)


_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


_CONTROLS = str.maketrans(
    {
        c: f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
        for c in (
            *(chr(n) for n in range(0x20) if chr(n) not in "\n\t"),
            *(chr(n) for n in range(0x7F, 0xA0)),
            *"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
        )
    }
)


def printable(text: str) -> str:
    """``text`` with every control character but line breaks and tabs written as an
    escape (``\\x1b``), and the bidirectional overrides too: names of functions and
    files from the measured code, and its log lines, reach the terminal, where an
    escape sequence would set the title, write the clipboard (OSC 52) or clear the
    screen, and an override would show code other than it is."""
    return text.translate(_CONTROLS)


def one_line(text: str) -> str:
    """``text`` with every character Python splits lines at written as an escape: a
    file name or a key read from a file may hold a line break."""
    return text.translate(_LINE_BREAKS)
