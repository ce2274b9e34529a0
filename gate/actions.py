"""The only module that reads the GitHub Actions environment or writes to it.

Outside Actions every function answers ``None`` / ``False``, so the rest of memgate
behaves the same on a laptop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator

import github_action_utils as gau

from gate.errors import InputError, printable


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
    """The checkout annotations are relative to (symbolic links resolved, as scenario
    paths are)."""
    if not in_actions():
        return None
    path = os.environ.get("GITHUB_WORKSPACE")
    return os.path.realpath(path) if path else None


def server() -> str:
    """The GitHub server's web address: the workflow's (GitHub Enterprise's own), else
    ``https://github.com``."""
    given = os.environ.get("GITHUB_SERVER_URL") if in_actions() else None
    return (given or "https://github.com").rstrip("/")


def repository() -> str | None:
    """The workflow's repository's web address (``SERVER/OWNER/NAME``)."""
    if not in_actions() or not os.environ.get("GITHUB_REPOSITORY"):
        return None
    return f"{server()}/{os.environ['GITHUB_REPOSITORY']}"


@dataclasses.dataclass(frozen=True)
class PullRequest:
    """The pull request a workflow run is for, and how to reach GitHub's API about it."""

    api: str
    repository: str
    """``OWNER/NAME``."""
    number: int
    token: str


def pull_request() -> PullRequest:
    """The pull request this workflow run is for (from ``$GITHUB_EVENT_PATH``), the API's
    address, and the token in ``$GITHUB_TOKEN``; :class:`InputError` in one line when
    any is missing (not in Actions, not a pull request's event, no token given)."""
    if not in_actions():
        raise InputError("not inside GitHub Actions: there is no pull request to comment on")
    if not in_pull_request():
        raise InputError(
            f"the workflow ran for {os.environ.get('GITHUB_EVENT_NAME') or 'no event'},"
            " not a pull request: there is no pull request to comment on"
        )
    try:
        with open(os.environ.get("GITHUB_EVENT_PATH", ""), encoding="utf-8") as event:
            found = json.load(event)
        number = found.get("pull_request", {}).get("number") or found.get("number")
    except (OSError, ValueError, AttributeError):
        number = None
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise InputError("the workflow's event names no pull request number ($GITHUB_EVENT_PATH)")
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise InputError(f"$GITHUB_REPOSITORY {repository!r}: not OWNER/NAME")
    token = os.environ.get("GITHUB_TOKEN", "")
    if not token:
        raise InputError("no $GITHUB_TOKEN: give the step env GITHUB_TOKEN: ${{ github.token }}")
    api = os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    return PullRequest(api, repository, number, token)


def in_pull_request() -> bool:
    """Whether this workflow run was triggered by a pull request (which must not write
    baselines)."""
    return in_actions() and os.environ.get("GITHUB_EVENT_NAME", "").startswith("pull_request")


_resume_token: str | None = None
"""Set while the runner is told to ignore workflow commands."""


@contextlib.contextmanager
def commands_paused() -> Iterator[None]:
    """Inside Actions, stop the runner from reading workflow commands in what memgate
    prints meanwhile (service logs' last lines, file and function names from the
    measured code); :func:`emit_commands` still gets memgate's own through. Outside
    Actions, or when already paused, nothing."""
    global _resume_token
    if not in_actions() or _resume_token is not None:
        yield
        return
    _resume_token = gau.begin_stop_commands()
    try:
        yield
    finally:
        gau.end_stop_commands(_resume_token)
        _resume_token = None


def emit_commands(text: str) -> None:
    """Print workflow commands (annotations) so that the runner reads them, resuming
    command processing around them if it is paused."""
    global _resume_token
    if not text:
        return
    if _resume_token is None:
        print(printable(text), end="", flush=True)
        return
    gau.end_stop_commands(_resume_token)
    print(printable(text), end="", flush=True)
    _resume_token = gau.begin_stop_commands()


def publish(annotations: str, summary: str, outputs: dict[str, str]) -> list[str]:
    """Print the annotations, append the job summary once, set the step outputs; what
    could not be written, one line each (the verdict's exit code stands: a folder at
    ``GITHUB_OUTPUT`` is the runner's problem, not the service's)."""
    if not in_actions():
        return []
    emit_commands(annotations)
    problems = []
    if summary and (path := os.environ.get("GITHUB_STEP_SUMMARY")):
        try:
            gau.append_job_summary(summary)
        except OSError as exc:
            problems.append(f"cannot write the job summary to {path}: {exc.strerror}")
    if path := os.environ.get("GITHUB_OUTPUT"):
        try:
            for name, value in outputs.items():
                gau.set_output(name, value)
        except OSError as exc:
            problems.append(f"cannot write the step outputs to {path}: {exc.strerror}")
    return problems
