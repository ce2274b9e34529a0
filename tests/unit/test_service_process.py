from __future__ import annotations

import json
import socket
from pathlib import Path

from gate.loopback import free_port
from gate.recording.file import FileRecorder
from gate.scenario import ProfileSpec, port_variable
from gate.service.agent_files import read_gc_samples
from gate.service.agent_settings import agent_settings
from gate.service.process import fill_port


def test_free_port_can_be_bound_and_filled_in() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert fill_port("http://127.0.0.1:{port}/h", port) == f"http://127.0.0.1:{port}/h"


def test_ports_fill_in() -> None:
    ports = {"worker": 8001, "api": 8002}
    text = "http://127.0.0.1:{port:worker}/ on {port}, {port:api}"
    assert fill_port(text, 9000, ports) == "http://127.0.0.1:8001/ on 9000, 8002"
    assert fill_port("{port}", 9000) == "9000"
    assert port_variable("worker") == "MEMGATE_PORT_WORKER"
    assert port_variable("jobs.v2-beta") == "MEMGATE_PORT_JOBS_V2_BETA"


def test_probe_files_with_torn_or_foreign_lines(tmp_path) -> None:
    (tmp_path / "gc.12.1700000000000000000.jsonl").write_text(
        '{"t": 1.0, "collections": [3, 1, 0], "seconds": 0.5}\n'
        '{"t": 1.1, "collections": [4, 1, 1]'  # cut short by a kill
    )
    (tmp_path / "gc.13.1700000000000000001.jsonl").write_text("not json\n[]\n")
    (tmp_path / "gc.x.1.jsonl").write_text('{"t": 1.0, "collections": [9, 9, 9], "seconds": 1}\n')
    (found,) = read_gc_samples(tmp_path / "gc")
    assert [(s.collections, s.full, s.seconds) for s in found] == [(4, 0, 0.5)]


def test_the_agent_is_told_how_to_profile_and_where_to_send() -> None:
    out = Path("/out")
    streamed = {"capture": "live", "port": 4321, "file": "/out/c.bin"}
    live = json.loads(agent_settings(ProfileSpec(follow_fork=True), out, streamed))
    assert live["capture"] == "live" and live["port"] == 4321 and live["folder"] == "/out"
    assert live["follow_fork"] and live["trace_python_allocators"] and not live["native"]
    assert live["gc"] == "/out/gc"
    native = ProfileSpec(trace_python_allocators=False, native=True)
    written = json.loads(
        agent_settings(native, out, FileRecorder(out / "c.bin", "service").agent_settings())
    )
    assert written["capture"] == "file" and written["file"] == "/out/c.bin"
    assert written["native"] and not written["trace_python_allocators"]
