"""Runs that cannot measure end in a RunError with one line, and keep their files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import psutil
import pytest

from gate.errors import ExitCode, InputError, RunError
from gate.runner import run_scenario
from gate.scenario import load_scenario

pytestmark = pytest.mark.integration

SERVER_THAT_DIES = """
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    served = 0

    def do_GET(self):
        Handler.served += 1
        if Handler.served > 200:
            os._exit(9)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def scenario_file(tmp_path: Path, command: str, path: str = "/") -> Path:
    (tmp_path / "locustfile.py").write_text(
        textwrap.dedent(f"""
        from locust import HttpUser, task

        class Visitor(HttpUser):
            @task
            def visit(self):
                self.client.get({path!r})
    """)
    )
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(
        textwrap.dedent(f"""
        [service]
        command = {json.dumps(command)}
        health_url = "http://127.0.0.1:{{port}}/"
        startup_timeout = 10
        stop_timeout = 5

        [load]
        locustfile = "locustfile.py"
        users = 2
        warmup_requests = 20
        requests = 300
        time_limit = 30
    """)
    )
    return scenario


def run(tmp_path: Path, command: str, path: str = "/") -> str:
    scenario = load_scenario(scenario_file(tmp_path, command, path))
    with pytest.raises(RunError) as caught:
        run_scenario(scenario, tmp_path / "out")
    assert caught.value.exit_code == ExitCode.RUN_FAILED
    message = str(caught.value)
    assert "\n" not in message
    assert (tmp_path / "out" / "service.log").is_file()
    return message


def leftovers(tmp_path: Path) -> list[psutil.Process]:
    """Processes of this run still alive: the service's and the load's command lines
    name files in ``tmp_path``, wherever they were re-parented."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(tmp_path) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_service_that_exits_at_start(tmp_path: Path) -> None:
    message = run(tmp_path, "python -c \"import sys; print('no database'); sys.exit(4)\"")
    assert "service exited with code 4 during start-up" in message
    assert message.endswith(": no database")
    assert not leftovers(tmp_path)


def test_service_that_never_becomes_healthy(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path, 'python -c "import time; time.sleep(600)"')
    scenario.write_text(scenario.read_text().replace("startup_timeout = 10", "startup_timeout = 2"))
    with pytest.raises(RunError, match=r"did not answer http://127\.0\.0\.1:\d+/ within 2 s"):
        run_scenario(load_scenario(scenario), tmp_path / "out")
    assert not leftovers(tmp_path)


def test_service_that_dies_under_load(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(SERVER_THAT_DIES)
    scenario = scenario_file(tmp_path, "python server.py {port}")
    scenario.write_text(scenario.read_text().replace("[service]", "[service]\ncwd = '.'"))
    with pytest.raises(RunError, match="service died under load with exit code 9") as caught:
        run_scenario(load_scenario(scenario), tmp_path / "out")
    assert "\n" not in str(caught.value)
    assert (tmp_path / "out" / "load.jsonl").stat().st_size > 0
    assert not leftovers(tmp_path)


def test_load_where_every_request_fails(tmp_path: Path) -> None:
    message = run(tmp_path, "python -m http.server {port} --bind 127.0.0.1", path="/missing-page")
    assert message.startswith("load produced no successful requests")


def test_locustfile_that_raises_is_bad_input(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path, "python -m http.server {port} --bind 127.0.0.1")
    (tmp_path / "locustfile.py").write_text("raise RuntimeError('fixture is broken')\n")
    with pytest.raises(InputError, match="load failed: RuntimeError: fixture is broken"):
        run_scenario(load_scenario(scenario), tmp_path / "out")
    assert not leftovers(tmp_path)
