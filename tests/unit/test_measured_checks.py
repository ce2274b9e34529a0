"""The check under load that a recorded fork still runs recorded: a fork seen without its
recording is refused only if it still runs without it ``EXIT_GRACE_S`` later, told at a
later check under load (the load's loop never sleeps for it), waited for at the last."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gate.errors import RunError
from gate.service import checks
from gate.service.checks import EXIT_GRACE_S, MeasuredChecks


class Recorder:
    traces = False

    def __init__(self, forks: list[int]) -> None:
        self._forks = forks

    def records(self, pid: int) -> bool | None:
        return pid not in self._forks

    def forks(self) -> list[int]:
        return list(self._forks)

    def stream_ended(self) -> bool:
        return False


class Service:
    who = "service"
    log_path = Path("service.log")
    started = True

    def __init__(self, forks: list[int]) -> None:
        self.pid = os.getpid()
        self.recorder = Recorder(forks)
        self._forks = forks

    def tree_pids(self) -> list[int]:
        return [self.pid, *self._forks]

    def exit_code(self) -> int | None:
        return None


@pytest.fixture
def worker():
    """A running process standing for a recorded fork that exec'd."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_fork_without_its_recording_is_refused_at_a_later_check_not_waited_for(
    worker: int,
) -> None:
    measured, service = MeasuredChecks(), Service([worker])
    began = time.monotonic()
    measured.check(service, 100)  # seen: no sleep, no refusal yet
    assert time.monotonic() - began < EXIT_GRACE_S
    time.sleep(EXIT_GRACE_S)
    with pytest.raises(RunError, match=rf"pid {worker}\), forked and recorded, exec'd"):
        measured.check(service, 200, now=True)


def test_the_last_check_waits_for_a_fork_seen_only_then(worker: int) -> None:
    with pytest.raises(RunError, match="without memgate's agent"):
        MeasuredChecks().check(Service([worker]), 100, now=True)


def test_a_fork_gone_or_a_zombie_meanwhile_is_not_refused(monkeypatch) -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while checks.psutil.Process(zombie.pid).status() != checks.psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    measured, service = MeasuredChecks(), Service([zombie.pid, gone.pid])
    measured.check(service, 100)
    time.sleep(EXIT_GRACE_S)
    measured.check(service, 200, now=True)  # neither refused
    zombie.wait()
