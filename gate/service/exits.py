"""How a process ended, told for people."""

from __future__ import annotations

import signal


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal 34`` for a number with no name (a realtime signal)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_text(code: int | None) -> str:
    """How a process ended, for people: its exit code, or the signal that killed it."""
    if code is None or code >= 0:
        return f"exit code {code}"
    name = signal_name(-code)
    if name == "SIGKILL":
        return "killed by SIGKILL, as the kernel's OOM killer does when memory runs out"
    return f"killed by {name}"
