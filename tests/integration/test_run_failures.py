"""Runs that cannot measure end in a RunError with one line, and keep their files."""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from gate.errors import InputError, RunError
from gate.report.formats import Format, render
from gate.report.report import Report
from gate.report.terminal import render_run
from gate.run.orchestrate import run_scenario
from gate.scenario import BudgetSpec, load_scenario
from gate.summary import summarize
from gate.verdict import decide
from tests.support import leftovers, run_file, scenario_file, server

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


def run(tmp_path: Path, command: str, path: str = "/") -> str:
    return run_file(tmp_path, scenario_file(tmp_path, command, path))


def failure(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "out" / "failure.json").read_text())


def test_service_that_exits_at_start(tmp_path: Path) -> None:
    # An earlier, passing run in the same folder: its verdict must not outlive this one.
    (tmp_path / "out").mkdir()
    for name in ("result.json", "report.json", "report.html"):
        (tmp_path / "out" / name).write_text("{}")
    message = run(tmp_path, "python -c \"import sys; print('no database'); sys.exit(4)\"")
    assert not any((tmp_path / "out" / n).exists() for n in ("result.json", "report.json"))
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
    with pytest.raises(RunError, match=r"service died under load \(exit code 9\)") as caught:
        run_scenario(load_scenario(scenario), tmp_path / "out")
    assert "\n" not in str(caught.value)
    assert (tmp_path / "out" / "load.jsonl").stat().st_size > 0
    assert not leftovers(tmp_path)


def test_load_where_every_request_fails(tmp_path: Path) -> None:
    message = run(tmp_path, "python -m http.server {port} --bind 127.0.0.1", path="/missing-page")
    assert message.startswith("load produced no successful requests")
    # It stops as soon as that is plain (50 requests, not the 300 asked for), and says why.
    assert "all failed, stopped early; most often GET /missing-page: HTTPError('404" in message
    sent = int(message.split("(")[1].split()[0])
    assert 50 <= sent < 300, message


def test_the_top_failure_reasons_are_kept_and_shown(tmp_path: Path) -> None:
    """One request in ten answered 404: the run measures, and says why requests failed."""
    not_found = (
        "if Handler.served % 10 == 0:\n"
        "            self.send_response(404)\n"
        "            self.end_headers()\n"
        "            return"
    )
    result = run_scenario(load_scenario(server(tmp_path, on_request=not_found)), tmp_path / "out")
    assert 0 < result.load.failures < result.load.requests
    (reason,) = result.load.failure_reasons
    assert (reason.method, reason.name) == ("GET", "/")
    assert reason.error.startswith("HTTPError('404 Client Error")
    assert reason.occurrences == result.load.failures
    terminal = " ".join(render_run(result, width=300).split())
    assert "failures GET /: HTTPError('404 Client Error" in terminal
    current = summarize(result, now=datetime.datetime.now(datetime.UTC))
    report = Report(result, current, decide(current, None, BudgetSpec()))
    page = render(report, Format.HTML)
    assert "<h2>Failed requests</h2>" in page and "404 Client Error" in page
    assert "Failed requests, most often: GET /" in render(report, Format.MARKDOWN)


def test_locustfile_that_raises_is_bad_input(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path, "python -m http.server {port} --bind 127.0.0.1")
    (tmp_path / "locustfile.py").write_text("raise RuntimeError('fixture is broken')\n")
    with pytest.raises(InputError, match="load failed: RuntimeError: fixture is broken"):
        run_scenario(load_scenario(scenario), tmp_path / "out")
    assert not leftovers(tmp_path)


def test_service_killed_as_the_oom_killer_does(tmp_path: Path) -> None:
    """The kernel's OOM killer ends a process with SIGKILL: no chance to clean up."""
    scenario = server(tmp_path, "if Handler.served > 150: os.kill(os.getpid(), signal.SIGKILL)")
    message = run_file(tmp_path, scenario)
    assert "service died under load (killed by SIGKILL, as the kernel's OOM killer does" in message
    seen = failure(tmp_path)
    # The load as of its last sample (every 0.1 s) before the death was seen: under a
    # busy machine's load, 94 of the 150 served requests had been counted.
    load = seen["load"]
    assert seen["phase"] == "load" and 0 < load["requests"] <= 151 + load["failures"]
    assert seen["service"]["returncode"] == -9
    assert seen["processes"] and all(p["rss"] > 0 for p in seen["processes"])
    assert {"service.log", "load.jsonl"} <= set(seen["files"])


def memory_cgroup() -> Path | None:
    """A fresh cgroup (v1 memory controller) this test may limit, if the machine lets it."""
    root = Path("/sys/fs/cgroup/memory")
    try:
        group = root / f"memgate-test-{os.getpid()}"
        group.mkdir()
    except OSError:
        return None
    return group


def test_service_over_its_memory_limit_is_oom_killed(tmp_path: Path) -> None:
    group = memory_cgroup()
    if group is None:
        pytest.skip("no writable cgroup memory controller on this machine")
    try:
        (group / "memory.limit_in_bytes").write_text(str(300 * 2**20))
        join = f"open({str(group / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))"
        scenario = server(tmp_path, "Handler.kept.append(bytearray(4 * 2**20))", join)
        message = run_file(tmp_path, scenario)
        assert "killed by SIGKILL" in message
        assert max(p["rss"] for p in failure(tmp_path)["processes"]) > 100 * 2**20
    finally:
        group.rmdir()


def test_service_that_ignores_the_stop_signals_is_killed_and_refused(tmp_path: Path) -> None:
    ignore = "for sig in (signal.SIGINT, signal.SIGTERM): signal.signal(sig, signal.SIG_IGN)"
    scenario = server(tmp_path, at_start=ignore)
    scenario.write_text(scenario.read_text().replace("stop_timeout = 5", "stop_timeout = 1"))
    message = run_file(tmp_path, scenario)
    assert message.startswith("service ignored the stop signals and was killed")
    assert failure(tmp_path)["phase"] == "stopping the service"


@pytest.fixture
def impostor() -> Iterator[int]:
    """Another HTTP server on a free port: the port a scenario's service wants."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait()


def on_fixed_port(scenario: Path, port: int) -> Path:
    scenario.write_text(scenario.read_text().replace("{port}", str(port)))
    return scenario


def test_port_taken_service_exits_at_start_up(tmp_path: Path, impostor: int) -> None:
    message = run_file(tmp_path, on_fixed_port(server(tmp_path), impostor))
    assert "Address already in use" in message or "another program holds it" in message


def test_port_taken_health_check_answered_by_another_program(tmp_path: Path, impostor: int) -> None:
    """A service that waits for its port to come free while another server answers the
    health check there: memgate must not load-test the wrong program."""
    waits = "import time; time.sleep(0.5)\nwhile True: time.sleep(1)"
    message = run_file(tmp_path, on_fixed_port(server(tmp_path, at_start=waits), impostor))
    assert f"no process of the service listens on port {impostor}" in message
    assert "another program holds it" in message


def test_load_that_sends_no_request(tmp_path: Path) -> None:
    scenario = server(tmp_path)
    (tmp_path / "locustfile.py").write_text(
        textwrap.dedent("""
        from locust import HttpUser, task

        class Idle(HttpUser):
            @task
            def nothing(self):
                self.environment.runner  # sends no request at all
                import time; time.sleep(0.2)
        """)
    )
    scenario.write_text(scenario.read_text().replace("time_limit = 30", "time_limit = 3"))
    message = run_file(tmp_path, scenario)
    assert message.startswith("load produced no successful requests (0 sent")


def test_a_load_that_misses_the_service_is_refused(tmp_path: Path) -> None:
    """Issue 15, case 1: a locustfile whose requests go to an absolute URL of another
    program on 127.0.0.1 is not the service's load, though every request succeeds."""
    import http.server
    import threading

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        port = other.server_address[1]
        scenario = scenario_file(
            tmp_path, "python -m http.server {port} --bind 127.0.0.1", f"http://127.0.0.1:{port}/"
        )
        message = run_file(tmp_path, scenario)
    finally:
        other.shutdown()
    assert "requests did not go to the service under test (" in message
    assert f"to 127.0.0.1:{port})" in message


def test_a_child_that_left_the_services_session_dies_with_the_run(tmp_path: Path) -> None:
    """A helper started in a session of its own escapes the service's process group;
    the run still kills it (it was seen in the service's tree)."""
    pidfile = tmp_path / "helper.pid"
    helper = (
        "import subprocess\n"
        f"p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))"
    )
    # (The run is refused: a process besides the service's own ran, unprofiled, through
    # the load.)
    with pytest.raises(RunError, match="that memray did not profile"):
        run_scenario(load_scenario(server(tmp_path, at_start=helper)), tmp_path / "out")
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not leftovers(tmp_path)


def test_a_capture_deleted_once_it_is_open_is_still_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memray reads an open capture to its end; its size was taken before (it was an
    internal error, with no failure.json, when the size was asked after the reading)."""
    import gate.recording.file
    from gate.recording.capture_file import Capture

    class Vanishing(Capture):
        """Deletes its file once memray has opened it, as a cleaner in CI might."""

        def __init__(self, path: Path, **options: Any) -> None:
            super().__init__(path, **options)
            path.unlink()

    monkeypatch.setattr(gate.recording.file, "Capture", Vanishing)
    scenario = server(tmp_path)
    scenario.write_text(scenario.read_text() + '\n[profile]\ncapture = "file"\n')
    result = run_scenario(load_scenario(scenario), tmp_path / "out")
    assert not (tmp_path / "out" / "capture.bin").exists()
    assert result.capture.mode == "file" and result.capture.bytes > 0
    assert result.load.measured_requests > 0 and len(result.curve.points) > 5
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_in_the_environment_is_not_asked_for_the_loopback_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # With a proxy set, the health check went through it and memgate said another
    # program held the port. This "proxy" answers every request, and counts them.
    proxy = socket.create_server(("127.0.0.1", 0))
    asked = []

    def answer() -> None:
        while True:
            try:
                conn, _ = proxy.accept()
            except OSError:
                return
            asked.append(conn.recv(4096))
            conn.sendall(b"HTTP/1.0 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        result = run_scenario(load_scenario(server(tmp_path)), tmp_path / "out")
    finally:
        proxy.close()
    assert result.load.measured_requests > 0 and result.load.failures == 0
    assert asked == []
