"""``load.processes = 2``: Locust's master and two workers on 127.0.0.1, driven by memgate.

The load reaches its bound with both workers sending requests, the timeline keeps its
100 ms resolution, and every way the workers can fail ends in one line and the right
exit code, with no process left behind.
"""

from __future__ import annotations

import itertools
import json
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from gate.errors import ExitCode, InputError
from gate.load import LoadConfig, LoadProcess
from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario
from tests.support import leftovers, run_file

pytestmark = pytest.mark.integration

LOCUSTFILE = """
import os, sys, time
from locust import HttpUser, task

IN_A_WORKER = "--worker" in sys.argv  # as with locust's own --worker
{at_import}
served = 0

class Visitor(HttpUser):
    @task
    def visit(self):
        global served
        self.client.get("/")
        served += 1
        {per_request}
"""


def distributed(
    tmp_path: Path,
    at_import: str = "",
    per_request: str = "pass",
    requests: int = 600,
    time_limit: float = 30,
) -> Path:
    (tmp_path / "locustfile.py").write_text(
        LOCUSTFILE.format(at_import=at_import, per_request=per_request)
    )
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(
        textwrap.dedent(f"""
        [service]
        command = "python -m http.server {{port}} --bind 127.0.0.1"
        health_url = "http://127.0.0.1:{{port}}/"
        startup_timeout = 10
        stop_timeout = 5

        [load]
        locustfile = "locustfile.py"
        users = 4
        spawn_rate = 20
        processes = 2
        warmup_requests = 50
        requests = {requests}
        time_limit = {time_limit}
    """)
    )
    return scenario


def timeline(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "out" / "load.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_two_locust_processes_reach_the_bound_together(tmp_path: Path) -> None:
    result = run_scenario(load_scenario(distributed(tmp_path)), tmp_path / "out")
    assert result.load.stop_reason == "requests"
    assert result.load.measured_requests >= 600
    assert result.load.failures == 0
    events = timeline(tmp_path)
    end = events[-1]
    assert end["event"] == "end" and end["requests"] == result.load.requests
    # Both workers served, and what they reported adds up to the master's stats.
    by_worker = {w["worker"]: w["requests"] for w in end["workers"]}  # type: ignore[attr-defined]
    assert sorted(by_worker) == [1, 2]
    assert min(by_worker.values()) > 0.2 * end["requests"]  # type: ignore[operator]
    assert sum(by_worker.values()) == end["requests"]
    # Workers report every 0.1 s, not Locust's 3 s: the counts rise sample after sample.
    counts = [e["requests"] for e in events if e["event"] == "sample"]
    assert counts == sorted(counts)
    rises = sum(1 for a, b in itertools.pairwise(counts) if b > a)
    assert rises >= 0.6 * (len(counts) - 1) and rises >= 5
    assert not leftovers(tmp_path)


def test_a_locustfile_that_raises_in_a_worker_is_bad_input(tmp_path: Path) -> None:
    scenario = distributed(tmp_path, "if IN_A_WORKER: raise RuntimeError('not in a worker')")
    with pytest.raises(InputError) as caught:
        run_scenario(load_scenario(scenario), tmp_path / "out")
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert "\n" not in str(caught.value)
    assert "Locust worker" in str(caught.value)
    assert ": RuntimeError: not in a worker (see " in str(caught.value)
    assert not leftovers(tmp_path)


def test_a_worker_that_fails_to_start(tmp_path: Path) -> None:
    message = run_file(tmp_path, distributed(tmp_path, "if IN_A_WORKER: os._exit(7)"))
    assert "exited with code 7 before connecting to the master" in message


def test_workers_that_never_connect_end_at_the_time_limit(tmp_path: Path) -> None:
    scenario = distributed(tmp_path, "if IN_A_WORKER: time.sleep(600)", time_limit=3)
    message = run_file(tmp_path, scenario)
    assert "only 0 of 2 Locust workers connected to the master within 3 s" in message


def test_a_worker_that_dies_under_load(tmp_path: Path) -> None:
    scenario = distributed(
        tmp_path, per_request="if IN_A_WORKER and served > 150: os._exit(5)", requests=5000
    )
    message = run_file(tmp_path, scenario)
    assert "exited with code 5 under load" in message


def test_a_worker_killed_by_a_signal_is_named(tmp_path: Path) -> None:
    # The OOM killer's way: the signal's name, not an internal error of the master.
    scenario = distributed(
        tmp_path,
        per_request="if IN_A_WORKER and served > 150: os.kill(os.getpid(), 9)",
        requests=5000,
    )
    message = run_file(tmp_path, scenario)
    assert "exited with SIGKILL under load" in message


def test_workers_end_with_their_master_even_when_stuck(tmp_path: Path) -> None:
    """The master killed alone (not its process group), its workers hung in the
    locustfile's import: they still end, within moments."""
    distributed(tmp_path, "if IN_A_WORKER: time.sleep(600)")
    (tmp_path / "out").mkdir()
    config = LoadConfig(
        locustfile=str(tmp_path / "locustfile.py"),
        user_classes=[],
        host="http://127.0.0.1:1",
        users=2,
        spawn_rate=2,
        warmup_requests=0,
        requests=None,
        duration=60,
        time_limit=60,
        timeline_path=str(tmp_path / "out" / "load.jsonl"),
        processes=2,
    )
    load = LoadProcess(config, tmp_path / "out" / "load.log")
    load.start()
    try:
        master = psutil.Process(load._proc.pid)  # type: ignore[union-attr]
        deadline = time.monotonic() + 15
        while len(workers := master.children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2
        master.kill()
        _, alive = psutil.wait_procs(workers, timeout=3)
        assert not alive
    finally:
        load.kill()
    assert not leftovers(tmp_path)
