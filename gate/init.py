"""``memgate init -- COMMAND...``: a first scenario and a plain locustfile for the service
the command starts, so that the first check of a real service takes minutes.

The command runs once, without memray, on a free port of 127.0.0.1 (``{port}`` in it);
its health URL is the first of the usual paths that answers 2xx (or the one given), and
when it serves an OpenAPI document, each GET endpoint without path parameters becomes a
task. The service is stopped (its whole process group) before anything is written, and
no file is written over.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from gate.errors import InputError, RunError
from gate.scenario.sections import NAME_PATTERN
from gate.service import free_port

HEALTH_PATHS = ("/health", "/healthz", "/ready", "/status", "/")
"""Tried in order when no health path is given."""
OPENAPI_PATHS = ("/openapi.json", "/swagger.json", "/api/openapi.json", "/v3/api-docs")
MOST_TASKS = 20
STOP_TIMEOUT_S = 10.0


def init(
    command: Sequence[str],
    *,
    name: str,
    out: Path,
    health: str | None = None,
    timeout: float = 30.0,
) -> tuple[Path, Path]:
    """Probe the service ``command`` starts (run in the current folder) and write
    ``out/NAME.toml`` and ``out/NAME_locustfile.py``; both paths."""
    if not command:
        raise InputError("give the command that starts the service after --")
    if not any("{port}" in part for part in command):
        raise InputError(
            "the command must take its port from memgate: write {port} where the port goes"
            " (for example: -- python -m uvicorn app:app --port {port})"
        )
    if not re.match(NAME_PATTERN, name):
        raise InputError(f"--name {name!r}: letters, digits, '.', '_' and '-' only")
    scenario, locustfile = out / f"{name}.toml", out / f"{name}_locustfile.py"
    for path in (scenario, locustfile):
        if path.exists():
            raise InputError(f"{path} exists: memgate init writes over nothing")
    found_health, gets = probe(command, health=health, timeout=timeout)
    out.mkdir(parents=True, exist_ok=True)
    cwd = os.path.relpath(Path.cwd(), out.resolve())
    locustfile.write_text(locustfile_text(name, gets, found_health))
    scenario.write_text(scenario_text(command, cwd, found_health, locustfile.name, bool(gets)))
    return scenario, locustfile


def probe(command: Sequence[str], *, health: str | None, timeout: float) -> tuple[str, list[str]]:
    """Start the service, find its health path and its GET endpoints, stop it."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stopped whole
        )
    except OSError as exc:
        raise RunError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    try:
        found = _wait_healthy(process, port, [health] if health else list(HEALTH_PATHS), timeout)
        return found, _get_endpoints(port, found)
    finally:
        _stop(process)


def _wait_healthy(
    process: subprocess.Popen[bytes], port: int, paths: list[str], timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = (process.stderr.read() if process.stderr else b"").decode(errors="replace")
            last = said.strip().splitlines()[-1] if said.strip() else "no output"
            raise RunError(f"the service exited with code {process.returncode}: {last}")
        for path in paths:
            if _status(port, path) in range(200, 300):
                return path
        time.sleep(0.2)
    tried = ", ".join(paths)
    raise RunError(
        f"the service answered none of {tried} with 2xx on 127.0.0.1:{port} within"
        f" {timeout:g} s: give its health path with --health PATH"
    )


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return 0


def _get_endpoints(port: int, health: str) -> list[str]:
    """The GET paths without parameters an OpenAPI document lists, the health one left
    out; none without a document."""
    for path in OPENAPI_PATHS:
        try:
            url = f"http://127.0.0.1:{port}{path}"
            with urllib.request.urlopen(url, timeout=5) as response:
                document = json.loads(response.read(8 * 2**20))
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            continue
        paths = document.get("paths") if isinstance(document, dict) else None
        if not isinstance(paths, dict):
            continue
        gets = [
            p
            for p, methods in paths.items()
            if isinstance(p, str)
            and p.startswith("/")
            and "{" not in p
            and isinstance(methods, dict)
            and "get" in methods
            and p != health
        ]
        return sorted(gets)[:MOST_TASKS]
    return []


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Its whole process group: SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # what it left behind in its group
    if process.stderr is not None:
        process.stderr.close()


def _join(command: Sequence[str]) -> str:
    """The command as one line of shell words, ``{port}`` left bare to read."""
    return " ".join(
        part if re.fullmatch(r"[\w@%+=:,./{}-]+", part) else shlex.quote(part) for part in command
    )


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


def scenario_text(
    command: Sequence[str], cwd: str, health: str, locustfile: str, from_openapi: bool
) -> str:
    load = "its OpenAPI document's GET endpoints" if from_openapi else "its health path only"
    return f"""\
# Written by memgate init: the service, and a first load ({load}).
# Edit the locustfile so that the load is what the service serves in production, then:
#   memgate run {locustfile.removesuffix("_locustfile.py")}.toml
description = {_toml_string("written by memgate init for: " + _join(command))}

[service]
command = {_toml_string(_join(command))}
cwd = {_toml_string(cwd)}
health_url = {_toml_string("http://127.0.0.1:{port}" + health)}

[load]
locustfile = {_toml_string(locustfile)}
users = 4
spawn_rate = 4
warmup_requests = 500
requests = 5000
time_limit = 300
"""


def locustfile_text(name: str, gets: Sequence[str], health: str) -> str:
    paths = list(gets) or [health]
    why = (
        "one task per GET endpoint without path parameters in its OpenAPI document"
        if gets
        else "no OpenAPI document was found: add the requests the service serves"
    )
    tasks = []
    used: set[str] = set()
    for path in paths:
        function = re.sub(r"\W+", "_", path).strip("_") or "root"
        while function in used:
            function += "_"
        used.add(function)
        tasks.append(
            f"    @task\n    def get_{function}(self) -> None:\n"
            f"        self.client.get({json.dumps(path)})\n"
        )
    return (
        f'"""The load of scenario {name}, written by memgate init:\n{why}."""\n\n'
        "from locust import HttpUser, constant, task\n\n\n"
        "class Visitor(HttpUser):\n"
        "    wait_time = constant(0)\n\n" + "\n".join(tasks)
    )
