"""Daemons a service starts: a process that left the service's session and tree."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario
from tests.support import leftovers, server

pytestmark = pytest.mark.integration

DOUBLE_FORK = """
import time
_pid = os.fork()
if _pid == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(10**6)  # the daemon, reparented to init at once
    os._exit(0)
os.waitpid(_pid, 0)
"""


SHELL_DAEMON = """
import subprocess
# Through a shell: no Python at-fork hook runs in the daemon, which is reparented at once.
script = "(setsid python3 -c 'import time; time.sleep(600)' %s &)" % sys.argv[2]
subprocess.run(["sh", "-c", script], check=True)
"""


def run_and_count_survivors(tmp_path: Path, at_start: str) -> list[object]:
    """Run a service that starts a daemon (its command line names ``tmp_path``, as
    :func:`leftovers` looks for); what of it is still alive 3 s after the run, killed."""
    scenario = server(tmp_path, at_start=at_start)
    command = "python server.py {port}"
    text = scenario.read_text().replace(command, f"{command} {tmp_path}")
    # 1,500 requests: a run long enough to read on a busy machine (300 may give too few
    # points), so that what is tested is what outlives it.
    scenario.write_text(text.replace("requests = 300", "requests = 1500"))
    run_scenario(load_scenario(scenario), tmp_path / "out")
    deadline = time.monotonic() + 3
    while leftovers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = leftovers(tmp_path)
    for proc in survivors:
        proc.kill()
    return survivors


def test_a_daemon_started_through_a_shell_does_not_outlive_the_run(tmp_path: Path) -> None:
    """Issue 25, case 11's gap: a daemon started through ``subprocess`` (no Python at-fork
    hook in it), reparented before memgate's first look at the tree, outlived every run
    (5 of 5). The service's environment carries a mark (``$MEMGATE_SERVICE``) that what
    it starts inherits: memgate finds the daemon by it, wherever it went, and kills it."""
    assert not run_and_count_survivors(tmp_path, SHELL_DAEMON)


def test_a_double_forked_daemon_does_not_outlive_the_run(tmp_path: Path) -> None:
    """Issue 25, case 11: the daemon left the service's process group and its tree before
    memgate's sampler could see it; it outlived the run in 8 of 12 runs. Its agent hook
    now reads its parent before the fork: the daemon ends with the process that forked
    it."""
    assert not run_and_count_survivors(tmp_path, DOUBLE_FORK)
