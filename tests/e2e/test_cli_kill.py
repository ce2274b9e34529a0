"""memgate killed with SIGKILL takes no chance to stop anything: the service, its forked
workers and the load must die with it all the same (the kernel's parent-death signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.support import MEMGATE, REPO

pytestmark = pytest.mark.e2e


def started_by(out: Path) -> list[psutil.Process]:
    """The processes of a run into ``out``: the service and its forks (each counts its
    garbage collections into ``out/gc.PID.*.jsonl``) and the load (its command line
    names ``out``)."""
    pids = {int(path.name.split(".")[1]) for path in out.glob("gc.*.jsonl")}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["pid"] in pids or ("gate.load" in cmdline and str(out) in cmdline):
            found.append(proc)
    return found


def test_killing_memgate_kills_the_service_its_workers_and_the_load(tmp_path: Path) -> None:
    out = tmp_path / "out"
    memgate = subprocess.Popen(
        [str(MEMGATE), "run", "scenarios/demo-gunicorn.toml", "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # what it started is not killed with the test's group
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = started_by(out)
            if len(running) >= 4:  # gunicorn's master, two workers, the load
                break
            assert memgate.poll() is None, "memgate ended before the load started"
            time.sleep(0.2)
        else:
            pytest.fail(f"the run did not get under way: {started_by(out)}")
        os.kill(memgate.pid, signal.SIGKILL)
        memgate.wait(10)
        _, alive = psutil.wait_procs(running, timeout=10)
        assert not alive, [(p.pid, p.cmdline()) for p in alive]
    finally:
        if memgate.poll() is None:
            memgate.kill()
        for proc in started_by(out):
            proc.kill()
