"""Runs of small throwaway services (the integration tests): a scenario around an
``http.server`` whose handler does what a test says, a run that must fail, and the
processes a run left behind."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import psutil
import pytest

from gate.errors import ExitCode, RunError
from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario


def scenario_file(tmp_path: Path, command: str, path: str = "/") -> Path:
    """A scenario in ``tmp_path`` whose service is ``command`` (on ``{port}``), loaded
    with 300 requests to ``path`` (20 of them warm-up) by 2 users."""
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


SERVER = """
import http.server, os, signal, sys

class Handler(http.server.BaseHTTPRequestHandler):
    served = 0
    kept = []

    def do_GET(self):
        Handler.served += 1
        {on_request}
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

{at_start}
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def server(tmp_path: Path, on_request: str = "pass", at_start: str = "") -> Path:
    """A scenario whose service is :data:`SERVER`, written to ``tmp_path``: ``at_start``
    runs before it serves, ``on_request`` in each GET (``Handler.served`` counts them)."""
    (tmp_path / "server.py").write_text(SERVER.format(on_request=on_request, at_start=at_start))
    scenario = scenario_file(tmp_path, "python server.py {port}")
    scenario.write_text(scenario.read_text().replace("[service]", "[service]\ncwd = '.'"))
    return scenario


def run_file(tmp_path: Path, scenario: Path) -> str:
    """Run ``scenario``, which must fail: its one-line reason, after checking that what
    the run saw is kept in ``failure.json`` beside the files it left."""
    with pytest.raises(RunError) as caught:
        run_scenario(load_scenario(scenario), tmp_path / "out")
    assert caught.value.exit_code == ExitCode.RUN_FAILED
    message = str(caught.value)
    assert "\n" not in message
    assert (tmp_path / "out" / "service.log").is_file()
    assert caught.value.kept == tmp_path / "out" / "failure.json"
    failure = json.loads(caught.value.kept.read_text())
    assert failure["reason"] == message and failure["exit_code"] == 3
    assert "service.log" in failure["files"]
    assert not leftovers(tmp_path)
    return message


def leftovers(tmp_path: Path) -> list[psutil.Process]:
    """Processes of this run still alive: the service's and the load's command lines
    name files in ``tmp_path``, wherever they were re-parented."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(tmp_path) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found
