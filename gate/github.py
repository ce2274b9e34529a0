"""The only module that reads the GitHub Actions environment or writes to it.

Outside Actions every function answers ``None`` / ``False``, so the rest of memgate
behaves the same on a laptop.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import github_action_utils as gau


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def branch() -> str | None:
    """The pull request's head branch, or the pushed branch."""
    if not in_actions():
        return None
    return os.environ.get("GITHUB_HEAD_REF") or os.environ.get("GITHUB_REF_NAME") or None


def actor() -> str | None:
    """Who triggered the workflow run."""
    if not in_actions():
        return None
    return os.environ.get("GITHUB_ACTOR") or None


def workspace() -> str | None:
    """The checkout annotations are relative to."""
    if not in_actions():
        return None
    return os.environ.get("GITHUB_WORKSPACE") or None


@contextlib.contextmanager
def commands_paused() -> Iterator[None]:
    """Inside Actions, stop the runner from reading workflow commands in what is printed
    meanwhile (service names, file and function names from the measured code): only
    memgate's own annotations, printed after, are commands. Outside Actions, nothing."""
    if not in_actions():
        yield
        return
    with gau.stop_commands():
        yield


def publish(annotations: str, summary: str, outputs: dict[str, str]) -> None:
    """Print the annotations, append the job summary once, set the step outputs."""
    if not in_actions():
        return
    if annotations:
        print(annotations, end="", flush=True)
    if summary and os.environ.get("GITHUB_STEP_SUMMARY"):
        gau.append_job_summary(summary)
    if os.environ.get("GITHUB_OUTPUT"):
        for name, value in outputs.items():
            gau.set_output(name, value)
