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
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import gate
from gate import github
from gate.model import Provenance


def env_key(system: str, machine: str, python: str, memray: str, cpus: int | None) -> str:
    """``Linux-x86_64-py3.11-memray1.20-2cpu``: what must match for runs to be compared."""
    py_minor = ".".join(python.split(".")[:2])
    memray_minor = ".".join(memray.split(".")[:2])
    return f"{system}-{machine}-py{py_minor}-memray{memray_minor}-{cpus or '?'}cpu"


def collect(started_at: datetime.datetime, cwd: Path) -> Provenance:
    """The provenance of a run started now in ``cwd`` (the service's folder)."""
    memray = importlib.metadata.version("memray")
    python = platform.python_version()
    return Provenance(
        started_at=started_at.isoformat(timespec="seconds"),
        memgate=gate.__version__,
        python=python,
        memray=memray,
        locust=importlib.metadata.version("locust"),
        platform=platform.platform(),
        hostname=socket.gethostname(),
        commit=_git(cwd, "rev-parse", "HEAD"),
        branch=github.branch() or _branch(cwd),
        env_key=env_key(platform.system(), platform.machine(), python, memray, os.cpu_count()),
    )


def who(cwd: Path) -> str:
    """Who is acting: the Actions actor, else git's user, else the login name."""
    name = github.actor() or _git(cwd, "config", "user.name")
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


GC_PROBE = Path(__file__).with_name("_gc_probe.py")
"""memgate's probe inside the service: the script memray runs, which runs the service."""


def library_roots() -> list[str]:
    """Folders whose code is not the user's: the standard library and site-packages (and
    memgate's GC probe, the script memray runs)."""
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {sysconfig.get_path(name) for name in names}
    roots |= {
        sysconfig.get_path(name, vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
        for name in names
    }
    roots.add(str(GC_PROBE))  # memgate's probe runs the service: never the user's frame
    return sorted(root for root in roots if root)
