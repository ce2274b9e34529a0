from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from gate.errors import InputError, RunError
from gate.scenario import ProfileSpec, port_variable
from gate.service import (
    GC_PROBE,
    fill_port,
    free_port,
    profiled_command,
    python_target,
    read_gc_samples,
)

CAPTURE = Path("/out/capture.bin")
MEMRAY = [
    sys.executable,
    "-m",
    "memray",
    "run",
    "--quiet",
    "--force",
    "--output",
    str(CAPTURE),
]


def test_python_module_runs_under_this_interpreter_with_allocator_tracing() -> None:
    target = python_target(["python", "-m", "uvicorn", "app:app"], "")
    argv = profiled_command(target, ProfileSpec(), CAPTURE)
    # memray's script is the GC probe, which then runs the service's own target.
    probe = str(GC_PROBE)
    assert argv == [*MEMRAY, "--trace-python-allocators", probe, "-m", "uvicorn", "app:app"]


def test_python_script_in_native_mode() -> None:
    profile = ProfileSpec(trace_python_allocators=False, native=True)
    argv = profiled_command(python_target(["python3.11", "app.py", "--x"], ""), profile, CAPTURE)
    assert argv == [*MEMRAY, "--native", str(GC_PROBE), "app.py", "--x"]


def test_console_script_is_found_on_the_search_path(tmp_path: Path) -> None:
    script = tmp_path / "serve"
    script.write_text("#!/usr/bin/env python3\nprint('hi')\n")
    script.chmod(0o755)
    assert python_target(["serve", "--port", "1"], str(tmp_path)) == [str(script), "--port", "1"]


def test_non_python_program_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "server"
    binary.write_bytes(b"\x7fELF\x02\x01")
    binary.chmod(0o755)
    with pytest.raises(InputError, match="is not a Python program"):
        python_target(["server"], str(tmp_path))


def test_missing_program_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="service command not found: 'no-such-server'"):
        python_target(["no-such-server"], str(tmp_path))


@pytest.mark.parametrize("command", [["python"], ["python", "-u", "app.py"]])
def test_unsupported_python_invocations(command: list[str]) -> None:
    with pytest.raises(InputError, match=r"service\.command"):
        python_target(command, os.defpath)


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
