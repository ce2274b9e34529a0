"""A scenario of two real services over HTTP on 127.0.0.1, under the real memray and
Locust: each is started, health-checked, profiled and measured on its own; a failure of
either is named, and stops the other."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gate.errors import ExitCode, RunError
from gate.run.orchestrate import run_services
from gate.scenario import load_scenario
from tests.support import leftovers

pytestmark = pytest.mark.integration

BACK = """
import http.server, os, sys

DIE_AFTER = int(os.environ.get("DIE_AFTER", "0"))

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    served = 0

    def do_GET(self):
        Handler.served += 1
        if DIE_AFTER and Handler.served > DIE_AFTER:
            os._exit(9)
        body = b"back"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

try:
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
except KeyboardInterrupt:
    pass
"""

FRONT = """
import http.client, http.server, os, sys, threading

BACK_PORT = int(sys.argv[2])
local = threading.local()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/health":
            body, status = b"ok", 200
        else:  # every other request is answered by the back service
            if not hasattr(local, "back"):
                local.back = http.client.HTTPConnection("127.0.0.1", BACK_PORT, timeout=5)
            local.back.request("GET", "/")
            answer = local.back.getresponse()
            body, status = answer.read(), answer.status
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

assert os.environ["MEMGATE_PORT_BACK"] == sys.argv[2], "the back's port, both ways"
try:
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
except KeyboardInterrupt:
    pass
"""


def two_services(tmp_path: Path, front: str = "front.py", requests: int = 1500) -> Path:
    (tmp_path / "back.py").write_text(BACK)
    (tmp_path / "front.py").write_text(FRONT)
    (tmp_path / "locustfile.py").write_text(
        textwrap.dedent("""
        from locust import FastHttpUser, task

        class Visitor(FastHttpUser):
            @task
            def visit(self):
                self.client.get("/work")
    """)
    )
    scenario = tmp_path / "pair.toml"
    scenario.write_text(
        textwrap.dedent(f"""
        [services.back]
        command = "python back.py {{port}}"
        health_url = "http://127.0.0.1:{{port}}/"
        startup_timeout = 10
        stop_timeout = 5

        [services.front]
        command = "python {front} {{port}} {{port:back}}"
        health_url = "http://127.0.0.1:{{port}}/health"
        startup_timeout = 10
        stop_timeout = 5

        [load]
        target = "front"
        locustfile = "locustfile.py"
        users = 2
        warmup_requests = 100
        requests = {requests}
        time_limit = 60
    """)
    )
    return scenario


def test_each_service_is_profiled_and_measured_on_its_own(tmp_path: Path) -> None:
    out = tmp_path / "out"
    back, front = run_services(load_scenario(two_services(tmp_path)), out)
    assert [back.scenario.key, front.scenario.key] == ["pair/back", "pair/front"]
    # The front answered every request by asking the back: no failure means both
    # were up and found each other through {port:back} and MEMGATE_PORT_BACK.
    assert front.load.failures == 0
    assert front.load.measured_requests >= 1500
    assert back.load == front.load and back.timeline == front.timeline  # one load
    for result, name in ((back, "back"), (front, "front")):
        folder = out / name
        # Each read live from its own stream.
        assert result.capture.mode == "sampled"  # the default: counted and sampled
        assert result.capture.file == "" and not (folder / "capture.bin").exists()
        assert (folder / "service.log").is_file()
        assert result.files["load_timeline"] == "../load.jsonl"
        assert (folder / result.files["load_timeline"]).is_file()
        assert result.settings["service"]["command"][1] == f"{name}.py"
        assert result.settings["load"]["target"] == "front"
        assert len(result.curve.points) > 10
        assert result.processes and result.processes[-1].processes == 1
    # Two processes, two captures: the heaps are not one curve told twice.
    assert [p.heap for p in back.curve.points] != [p.heap for p in front.curve.points]
    assert not leftovers(tmp_path)


def test_a_service_that_does_not_start_stops_the_ones_before_it(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import sys\nprint('no broker')\nsys.exit(4)\n")
    scenario = load_scenario(two_services(tmp_path, front="broken.py"))
    with pytest.raises(RunError) as caught:
        run_services(scenario, tmp_path / "out")
    message = str(caught.value)
    assert caught.value.exit_code is ExitCode.RUN_FAILED
    assert message.startswith("service front exited with code 4 during start-up")
    assert message.endswith(": no broker")
    failure = json.loads((tmp_path / "out" / "failure.json").read_text())
    assert failure["reason"] == message
    assert failure["phase"] == "starting the service front counted and sampled (nothing traced)"
    assert failure["services"]["front"]["returncode"] == 4
    assert failure["services"]["back"]["processes"]  # it ran, and was sampled
    assert failure["services"]["back"]["returncode"] is not None  # and it was stopped
    assert {"back/service.log", "front/service.log"} <= set(failure["files"])
    assert not leftovers(tmp_path)


def test_a_service_that_dies_under_load_is_named(tmp_path: Path) -> None:
    scenario = load_scenario(two_services(tmp_path)).with_overrides(env={"DIE_AFTER": "300"})
    with pytest.raises(RunError) as caught:
        run_services(scenario, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(("service back died under load", "service back ended during"))
    assert "(exit code 9)" in message
    failure = json.loads((tmp_path / "out" / "failure.json").read_text())
    assert failure["services"]["back"]["returncode"] == 9
    assert not leftovers(tmp_path)


def test_a_service_whose_command_is_missing_starts_none(tmp_path: Path) -> None:
    path = two_services(tmp_path)
    path.write_text(path.read_text().replace("python front.py", "no-such-program-here"))
    with pytest.raises(RunError) as caught:
        run_services(load_scenario(path), tmp_path / "out")
    assert str(caught.value) == "services.front command not found: 'no-such-program-here'"
    failure = json.loads((tmp_path / "out" / "failure.json").read_text())
    # Every service's command and interpreter are checked before the first starts.
    assert failure["phase"] == "checking the services' interpreters"
    assert not (tmp_path / "out" / "back" / "service.log").exists()
    assert not leftovers(tmp_path)
