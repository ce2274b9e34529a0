"""Where a run was made: versions, machine, git commit and branch, and who is asking.

The **environment key** groups runs that can be compared: memory figures move with the
platform, the CPU architecture, the Python minor version, memray's minor version and
the number of CPUs (the load, and so the allocation pattern, depends on it), in the
spirit of pytest-benchmark's machine id.
"""

from __future__ import annotations

import datetime
import getpass
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
from pathlib import Path

import gate
from gate import actions
from gate.agent import describe_python
from gate.environment import env_key
from gate.model import Provenance


def collect(
    started_at: datetime.datetime,
    cwd: Path,
    python: str | None = None,
    distributions: dict[str, str] | None = None,
    packages: dict[str, list[str]] | None = None,
    recording: str = "",
) -> Provenance:
    """The provenance of a run started now in ``cwd`` (the service's folder): of a
    service measured by the agent in its own Python ``python`` (its version), or of code
    measured inside memgate (``python`` not given)."""
    memray = importlib.metadata.version("memray")
    repository, repository_path = _repository(cwd)
    return Provenance(
        started_at=started_at.isoformat(timespec="seconds"),
        memgate=gate.__version__,
        python=python or platform.python_version(),
        memray=memray,
        locust=importlib.metadata.version("locust"),
        platform=platform.platform(),
        hostname=socket.gethostname(),
        commit=_git(cwd, "rev-parse", "HEAD"),
        branch=actions.branch() or _branch(cwd),
        env_key=env_key(
            platform.system(),
            platform.machine(),
            python or platform.python_version(),
            memray,
            os.cpu_count(),
            agent=python is not None,
            recording=recording,
        ),
        distributions=distributions,
        packages=packages,
        repository=repository,
        repository_path=repository_path,
        dirty=_dirty(cwd),
    )


DIRTY_MOST = 20
"""Changed files named in a run's provenance, at most."""


def _dirty(cwd: Path) -> tuple[str, ...] | None:
    """The checkout's tracked files changed since its commit, staged or not (at most
    ``DIRTY_MOST``); ``None`` outside a checkout."""
    if _git(cwd, "rev-parse", "HEAD") is None:
        return None
    changed = _git(cwd, "diff", "--name-only", "HEAD") or ""
    return tuple(changed.splitlines()[:DIRTY_MOST])


def _repository(cwd: Path) -> tuple[str | None, str | None]:
    """The repository on GitHub of the checkout ``cwd`` is in, and ``cwd`` within it:
    its ``origin`` remote's, if on the GitHub server; else, for the workflow's own
    checkout, the workflow's repository (``actions/checkout`` may fetch another one into
    a folder of its workspace, which links must not mix up)."""
    top = _git(cwd, "rev-parse", "--show-toplevel")
    if top is None:
        return None, None
    relative = os.path.relpath(os.path.realpath(cwd), os.path.realpath(top))
    repository = github_remote(_git(cwd, "remote", "get-url", "origin"), actions.server())
    if repository is None and os.path.realpath(top) == actions.workspace():
        repository = actions.repository()
    path = "" if relative == "." else relative.replace(os.sep, "/")
    return repository, path


def github_remote(url: str | None, server: str = "https://github.com") -> str | None:
    """The web address of a git remote (HTTPS or SSH) on the GitHub ``server``, credentials
    left out; ``None`` for any other remote."""
    host = re.escape(server.split("://", 1)[-1])
    found = re.fullmatch(
        rf"(?:https://(?:[^@/]+@)?|ssh://git@|git@){host}[:/]"
        r"(?P<name>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?",
        url or "",
    )
    return f"https://{server.split('://', 1)[-1]}/{found['name']}" if found else None


def who(cwd: Path) -> str:
    """Who is acting: the Actions actor, else git's user, else the login name."""
    name = actions.actor() or _git(cwd, "config", "user.name")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _branch(cwd: Path) -> str | None:
    name = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
    return None if name in (None, "HEAD") else name


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def library_roots() -> list[str]:
    """Folders of memgate's own interpreter whose code is not the user's: the standard
    library and site-packages (for code measured inside memgate, as ``memgate_calls``)."""
    return describe_python.library_roots()
