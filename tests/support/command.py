"""The installed ``memgate`` command, run as a user runs it (the end-to-end tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.repo import REPO

MEMGATE = shutil.which("memgate", path=os.path.dirname(sys.executable))


def memgate(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed command; outside GitHub Actions unless ``env`` says otherwise."""
    assert MEMGATE, "memgate is not installed beside this interpreter"
    base = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return subprocess.run(
        [MEMGATE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, **(env or {})},
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a command that failed wrote: on standard error, with no traceback
    and nothing on standard output."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines[0]
