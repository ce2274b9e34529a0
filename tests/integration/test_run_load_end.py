"""The curve ends when the users are told to stop: what the service frees as their
connections close is no part of it, read live or from a capture file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario
from gate.shapes import Shape
from tests.support import leftovers, scenario_file

pytestmark = pytest.mark.integration

HELD = 4 * 1024 * 1024
"""What each keep-alive connection holds until it closes."""

SERVER = f"""
import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # Locust's users keep their connection

    def setup(self):
        super().setup()
        self.held = bytearray({HELD})  # freed when the connection closes

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@pytest.mark.parametrize("capture", ["live", "file"])
def test_connections_closed_after_the_load_do_not_end_its_curve(
    tmp_path: Path, capture: str
) -> None:
    (tmp_path / "server.py").write_text(SERVER)
    scenario = scenario_file(tmp_path, "python server.py {port}")
    text = scenario.read_text().replace("[service]", "[service]\ncwd = '.'")
    scenario.write_text(text + textwrap.dedent(f'\n[profile]\ncapture = "{capture}"\n'))
    result = run_scenario(load_scenario(scenario), tmp_path / "out")
    measured = result.curve.points[result.curve.warmup_index :]
    # Both users' connections are open through the measured phase: 8 MiB held...
    assert min(p.heap for p in measured) > 2 * HELD
    # ...and still at the curve's last point, though the service freed them at the end.
    assert measured[-1].heap > 2 * HELD
    assert measured[-1].t <= result.load.duration_s
    assert result.analysis.shape is Shape.FLAT, result.analysis.heap.reason
    assert not leftovers(tmp_path)
