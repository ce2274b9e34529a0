"""Issue 25: never a pass that measured something else. A run whose measured process is
not the process that served the load is refused (exit 3, one line, failure.json kept):
a service that exec'd itself out from under memray, or into another program, and a
service whose port is served by a daemon that left its process tree."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest

from tests.support import leftovers, run_file, scenario_file, server

pytestmark = pytest.mark.integration

REEXEC = """
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    served = 0
    kept = []

    def do_GET(self):
        Handler.served += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
        if Handler.served == {at} and "--no-agent-marker" not in sys.argv:
            self.wfile.flush()
            {exec}
        Handler.kept.append(bytearray(512))

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

ITSELF = (
    "os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), sys.argv[1],"
    ' "--no-agent-marker"])'
)
SLEEP = 'os.execv("/bin/sleep", ["sleep", "600"])'

LAUNCHER = """
import os, socket, subprocess, sys, time

sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(64)
daemon = os.path.join(os.path.dirname(os.path.abspath(__file__)), "daemon.py")
subprocess.Popen([sys.executable, daemon, str(sock.fileno())], pass_fds=[sock.fileno()])
while True:  # the launcher idles, its listening socket still open
    time.sleep(1)
"""

DAEMON = """
import http.server, os, socket, sys

if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)

class Handler(http.server.BaseHTTPRequestHandler):
    kept = []

    def do_GET(self):
        Handler.kept.append(bytearray(512))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
server.socket = socket.socket(fileno=int(sys.argv[1]))
server.serve_forever()
"""


def service(tmp_path: Path, script: str, requests: int = 300, capture: str = "live") -> Path:
    """A scenario whose service is ``script`` (``python TMP/server.py {port}``: its path
    names ``tmp_path``, for :func:`leftovers`), loaded with ``requests`` requests and
    recorded as ``capture`` says (memray's own, live, unless told)."""
    (tmp_path / "server.py").write_text(textwrap.dedent(script))
    scenario = scenario_file(tmp_path, f"python {tmp_path / 'server.py'} {{port}}")
    text = scenario.read_text().replace("[service]", "[service]\ncwd = '.'")
    text = text.replace("requests = 300", f"requests = {requests}")
    scenario.write_text(f'{text}\n[profile]\ncapture = "{capture}"\n')
    return scenario


def test_a_service_that_re_execs_itself_without_memray_is_refused(tmp_path: Path) -> None:
    """Case 1: at request 600 the service execs itself again (same pid, same port) without
    memgate's agent and leaks on: memray's stream ended while the process lived on."""
    script = REEXEC.format(at=600, exec=ITSELF)
    message = run_file(tmp_path, service(tmp_path, script, requests=1500))
    assert "the service's process (pid " in message
    assert re.search(r"exec'd `python\S* \S+server\.py [0-9]+ --no-agent-marker` after", message)
    assert "without memray: memgate did not measure what served the rest" in message
    assert not leftovers(tmp_path)


def test_a_service_that_execs_another_program_is_refused(tmp_path: Path) -> None:
    """Case 2: at request 900 the service execs a program that only sleeps: the rest of
    the load fails (connection refused), and the stream ended."""
    script = REEXEC.format(at=900, exec=SLEEP)
    message = run_file(tmp_path, service(tmp_path, script, requests=1500))
    assert re.search(r"exec'd `sleep 600` after [0-9,]+ requests, without memray", message)
    assert not leftovers(tmp_path)


def test_a_port_served_by_a_daemon_outside_the_tree_is_refused(tmp_path: Path) -> None:
    """Case 3: the launcher binds the port and double-forks a ``setsid`` daemon that
    serves it (and leaks) while the launcher idles holding the socket too. (The daemon
    is a program of its own: one forked where memgate's agent runs dies with its parent.)"""
    (tmp_path / "daemon.py").write_text(DAEMON)
    message = run_file(tmp_path, service(tmp_path, LAUNCHER))
    assert "is served by pid " in message
    assert "which memgate does not profile" in message
    assert "run the server in the foreground" in message
    assert not leftovers(tmp_path)


def test_a_service_that_re_execs_itself_is_refused_with_a_capture_file(tmp_path: Path) -> None:
    """Case 1 with ``[profile] capture = "file"``: no stream to end, the memory map says it."""
    script = REEXEC.format(at=600, exec=ITSELF)
    message = run_file(tmp_path, service(tmp_path, script, requests=1500, capture="file"))
    assert "--no-agent-marker` after" in message and "without memray" in message
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("capture", ["counters", "sampled"])
def test_a_service_that_re_execs_itself_is_refused_when_counted(
    tmp_path: Path, capture: str
) -> None:
    """Case 1 counted (and sampled, the default): nothing traced, the agent's counters'
    file is closed in the process that exec'd (checked again at the load's end)."""
    script = REEXEC.format(at=600, exec=ITSELF)
    message = run_file(tmp_path, service(tmp_path, script, requests=1500, capture=capture))
    assert "--no-agent-marker` after" in message and "without memgate's agent" in message
    assert not leftovers(tmp_path)


CLOSE_STREAM = """
import socket
for fd in map(int, os.listdir("/proc/self/fd")):
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        continue
    if sock.family == socket.AF_INET and sock.getsockname()[1] != int(sys.argv[1]):
        sock.shutdown(socket.SHUT_RDWR)  # memray's stream: the one not on the service's port
    sock.close()
"""


def test_a_service_whose_memray_stream_ends_under_load_is_refused(tmp_path: Path) -> None:
    """The main process's live stream ends (here: the service shuts memray's socket)
    while the process serves on: what it serves from then on is not measured."""
    close = textwrap.indent(textwrap.dedent(CLOSE_STREAM), " " * 12).strip()
    scenario = service(tmp_path, REEXEC.format(at=600, exec=close), requests=1500)
    message = run_file(tmp_path, scenario)
    assert "memray's live stream of the service (pid " in message
    assert "ended under load while the process ran on, after" in message
    assert not leftovers(tmp_path)


def test_a_load_where_most_measured_requests_failed_is_refused(tmp_path: Path) -> None:
    """Most requests after the warm-up fail (here 404 for 7 in 10): no measurement of
    the service's work, though some succeeded."""
    failing = (
        "if Handler.served > 20 and Handler.served % 10 < 7:\n"
        "            self.send_response(404)\n"
        "            self.end_headers()\n"
        "            return"
    )
    message = run_file(tmp_path, server(tmp_path, on_request=failing))
    assert re.fullmatch(
        r"[0-9,]+ of [0-9,]+ measured requests failed; most often GET /: HTTPError\('404 .*"
        r": a load that mostly failed did not measure the service \(see \S+load\.log\)",
        message,
    ), message
    assert not leftovers(tmp_path)


HANDS_OVER = """
import http.server, os, subprocess, sys

class Handler(http.server.BaseHTTPRequestHandler):
    served = 0

    def do_GET(self):
        Handler.served += 1
        if Handler.served == 100:  # a daemon serves the port beside it from now on
            fd = self.server.socket.fileno()
            daemon = os.path.join(os.path.dirname(os.path.abspath(__file__)), "daemon.py")
            subprocess.Popen([sys.executable, daemon, str(fd)], pass_fds=[fd])
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_a_daemon_that_serves_the_port_from_mid_load_is_refused(tmp_path: Path) -> None:
    """Case 3 once healthy: the service serves, then starts the daemon under load; at the
    load's end the port is served by a process outside the tree."""
    (tmp_path / "daemon.py").write_text(DAEMON)
    message = run_file(tmp_path, service(tmp_path, HANDS_OVER))
    assert re.match(r"port [0-9]+ is served by pid [0-9]+, which memgate does not", message)
    assert not leftovers(tmp_path)


def test_a_service_that_stops_itself_is_named_within_the_time_limit(tmp_path: Path) -> None:
    # It read "ignored the stop signals and was killed" after 67 s, past a 25 s limit.
    stops = "if Handler.served == 300: os.kill(os.getpid(), signal.SIGSTOP)"
    scenario = server(tmp_path, on_request=stops)
    started = time.monotonic()
    message = run_file(tmp_path, scenario)
    took = time.monotonic() - started
    assert re.search(r"process \(pid \d+\) is stopped \(SIGSTOP, or a debugger\) after", message)
    assert took < 25, took


FORK_THAT_EXECS = """
import time
if os.fork() == 0:  # a worker, recorded (follow_fork), that execs at request 300
    while not os.path.exists("exec-now"):
        time.sleep(0.02)
    os.execv("/bin/sleep", ["sleep", "600"])
"""


@pytest.mark.parametrize("capture", ["live", "file", "sampled"])
def test_a_recorded_fork_that_execs_under_load_is_refused(tmp_path: Path, capture: str) -> None:
    """Case 1 for a worker: only the main process was checked; a recorded fork that
    exec'd another program read as a flat worker from then on."""
    at_300 = 'if Handler.served == 300: open("exec-now", "w").close()'
    scenario = server(tmp_path, on_request=at_300, at_start=FORK_THAT_EXECS)
    text = scenario.read_text().replace("requests = 300", "requests = 1500")
    scenario.write_text(text + f'\n[profile]\nfollow_fork = true\ncapture = "{capture}"\n')
    message = run_file(tmp_path, scenario)
    assert re.search(r"a process of the service \(pid [0-9]+\), forked and recorded,", message)
    without = "memgate's agent" if capture == "sampled" else "memray"
    assert re.search(rf"exec'd `sleep 600` after [0-9,]+ requests, without {without}", message)
    assert not leftovers(tmp_path)
