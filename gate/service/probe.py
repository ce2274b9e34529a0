"""What ``memgate init`` learns of a service by running it once, without memray, on a free
port of 127.0.0.1: its health path (the first of the usual paths that answers 2xx, or
the one given) and its GET routes, from its OpenAPI document if it serves one; else, for
a Python command, from its web framework, asked inside its process by memgate's agent
(Flask's url_map, Django's URL resolver, Starlette's routes); else from the links of its
root page. Each route without parameters must answer a GET below 400. The service is
stopped (its whole process group, and every process of its tree seen) before the probe
returns."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import IO

import psutil

from gate.errors import InputError, RunError
from gate.loopback import free_port, open_direct
from gate.service.interpreter import AGENT, service_command
from gate.service.tree import sample_tree

HEALTH_PATHS = ("/health", "/healthz", "/ready", "/status", "/")
"""Tried in order when no health path is given."""
OPENAPI_PATHS = ("/openapi.json", "/swagger.json", "/api/openapi.json", "/v3/api-docs")
MOST_TASKS = 20
OPENAPI_MOST_BYTES = 8 * 2**20
OPENAPI_READ_S = 10.0
"""How long an OpenAPI document may take to arrive, whole (each read has 5 s of its
own): one trickled a byte at a time is left out, not waited for."""
ROUTES_WAIT_S = 5.0
"""How long the agent's list of the framework's routes is waited for."""
ROUTES_AFTER_ANSWER_S = 0.5
"""Once a process answered without routes (a gunicorn master that never imported the
app), how much longer another (a worker) is waited for."""
ROOT_MOST_BYTES = 2**20
ROOT_READ_S = 5.0
NO_ROUTES = "no routes were found: add the requests the service serves"
SOURCES = {
    "openapi": "its OpenAPI document",
    "flask": "Flask's url_map",
    "django": "Django's URL resolver",
    "starlette": "Starlette's routes",
    "links": "the links of its root page",
}
"""Where the routes came from, as the written files say it."""
STOP_TIMEOUT_S = 10.0
TAIL_BYTES = 64 * 1024
"""How much of the end of the service's standard error is read for its last line."""


@dataclasses.dataclass(frozen=True)
class Probed:
    """What init found the service serves."""

    health: str
    gets: tuple[str, ...] = ()
    """GET paths without parameters that answered below 400, the health path left out."""
    with_params: tuple[str, ...] = ()
    """GET routes with parameters, as the framework writes them: for the user to fill in."""
    source: str = NO_ROUTES
    """Where the routes came from (a value of ``SOURCES``), or ``NO_ROUTES``."""


@dataclasses.dataclass(frozen=True)
class _Started:
    """The service as init runs it."""

    process: subprocess.Popen[bytes]
    stderr: IO[bytes]
    """Its standard error: a file, not a pipe. An unread pipe fills up and blocks a
    service that writes much before it listens; and reading a pipe to its end waits for
    every process that holds it, such as a child the service left running."""
    seen: dict[int, psutil.Process] = dataclasses.field(default_factory=dict)
    """Every process of its tree seen while it ran: one that left its process group
    (``setsid``) escapes the group's signal, and is killed by itself."""

    def last_line(self) -> str:
        """The last line it wrote on standard error, ``""`` if none; only the end of
        the file is read, as a service may write without bound."""
        size = self.stderr.seek(0, os.SEEK_END)
        self.stderr.seek(max(0, size - TAIL_BYTES))
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""


def probe(command: Sequence[str], *, health: str | None, timeout: float) -> Probed:
    """Start the service, find its health path and its GET routes, stop it."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryDirectory() as folder:
        run, env = _with_agent(argv, folder)
        try:
            process = subprocess.Popen(
                run,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                start_new_session=True,  # its own process group: stopped whole
            )
        except OSError as exc:
            raise RunError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
        service = _Started(process, stderr)
        try:
            paths = [health] if health else list(HEALTH_PATHS)
            found = _wait_healthy(service, port, paths, timeout)
            gets = _get_endpoints(port, found)
            if gets:
                return Probed(found, tuple(gets), (), SOURCES["openapi"])
            return _routes(service, port, found, folder if env is not None else None)
        finally:
            _stop(service)


def _with_agent(argv: list[str], folder: str) -> tuple[list[str], dict[str, str] | None]:
    """The command run by memgate's agent in its own interpreter, which lists the
    framework's routes from inside when asked, and its environment; a command that is no
    Python program (``sh -c ...``) as it is, with the environment inherited (``None``)."""
    try:
        python, target = service_command(
            argv, os.environ.get("PATH", ""), Path.cwd(), None, "command"
        )
    except (InputError, RunError):  # not Python, or not found: Popen says so as before
        return argv, None
    settings = json.dumps({"routes": folder, "folder": folder})
    return [python, str(AGENT), *target], {**os.environ, "MEMGATE_AGENT": settings}


def _routes(service: _Started, port: int, health: str, folder: str | None) -> Probed:
    """The framework's routes (asked of the agent in ``folder``), else the root page's
    links; those without parameters kept if they answer a GET below 400."""
    framework, listed = _framework_routes(service, folder) if folder else ("", [])
    if listed:
        source = SOURCES[framework]
        candidates = [path for path, params in listed if not params]
        with_params = tuple(path for path, params in listed if params)[:MOST_TASKS]
    else:
        source, candidates, with_params = SOURCES["links"], _root_links(port), ()
    gets = _answering(port, [path for path in candidates if path != health])
    if not gets and not with_params:
        return Probed(health)
    return Probed(health, tuple(gets), with_params, source)


def _framework_routes(service: _Started, folder: str) -> tuple[str, list[tuple[str, bool]]]:
    """Ask the agent for the framework's routes and wait for the first process to list
    some: ``(framework, [(path, has parameters), ...])``, ``("", [])`` if none did."""
    Path(folder, "routes.request").touch()
    deadline = time.monotonic() + ROUTES_WAIT_S
    root = psutil.Process(service.process.pid)
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            sample_tree(root, service.seen)
        answers = [_read_routes(path) for path in sorted(Path(folder).glob("routes.*.json"))]
        for framework, routes in answers:
            if routes:
                return framework, routes
        if answers:  # one answered without routes: another is waited for a moment only
            deadline = min(deadline, time.monotonic() + ROUTES_AFTER_ANSWER_S)
        if service.process.poll() is not None:
            break
        time.sleep(0.05)
    return "", []


def _read_routes(path: Path) -> tuple[str, list[tuple[str, bool]]]:
    """The agent's answer in ``path``, checked: it comes from the service's process."""
    try:
        said = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", []
    framework = said.get("framework") if isinstance(said, dict) else None
    routes = said.get("routes") if isinstance(said, dict) else None
    if framework not in SOURCES or framework == "openapi" or not isinstance(routes, list):
        return "", []
    found = [
        (route["path"], bool(route.get("params")))
        for route in routes
        if isinstance(route, dict)
        and isinstance(route.get("path"), str)
        and route["path"].startswith("/")
    ]
    return str(framework), found


class _Links(HTMLParser):
    """The ``href`` of each ``<a>`` tag, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def same_origin_links(html: str) -> list[str]:
    """The paths of this site the page's links lead to, resolved against ``/``, without
    query nor fragment, each once, at most ``MOST_TASKS``: another host's link
    (``//host``, ``https://...``) or another scheme's (``mailto:``) is none of them."""
    parser = _Links()
    with contextlib.suppress(Exception):  # a page is the service's: whatever it holds
        parser.feed(html)
        parser.close()
    paths: list[str] = []
    for href in parser.hrefs:
        href = href.strip()
        parts = urllib.parse.urlsplit(href)
        if href.startswith("//") or parts.scheme or parts.netloc:
            continue
        path = urllib.parse.urlsplit(urllib.parse.urljoin("/", href)).path or "/"
        if path not in paths:
            paths.append(path)
        if len(paths) >= MOST_TASKS:
            break
    return paths


def _root_links(port: int) -> list[str]:
    """The links of the root page, if it is HTML."""
    try:
        with open_direct(f"http://127.0.0.1:{port}/", timeout=5) as response:
            if "html" not in (response.headers.get("Content-Type") or "").lower():
                return []
            body = _read_within(response, ROOT_READ_S, ROOT_MOST_BYTES)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return []
    return same_origin_links(body.decode("utf-8", errors="replace"))


def _answering(port: int, paths: Sequence[str]) -> list[str]:
    """The ``paths`` that answer one GET below 400, at most ``MOST_TASKS``; at most
    three times as many asked."""
    kept = []
    for path in paths[: 3 * MOST_TASKS]:
        if 0 < _status(port, path) < 400:
            kept.append(path)
            if len(kept) >= MOST_TASKS:
                break
    return kept


def _wait_healthy(service: _Started, port: int, paths: list[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    root = psutil.Process(service.process.pid)  # not reaped before poll(): it exists
    while time.monotonic() < deadline:
        sample_tree(root, service.seen)
        if service.process.poll() is not None:
            raise RunError(
                f"the service exited with code {service.process.returncode}:"
                f" {service.last_line() or 'no output'}"
            )
        for path in paths:
            if _status(port, path) in range(200, 300):
                return path
        time.sleep(0.2)
    said = service.last_line()
    raise RunError(
        f"the service answered none of {', '.join(paths)} with 2xx on 127.0.0.1:{port}"
        f" within {timeout:g} s: give its health path with --health PATH"
        + (f" (its last line on standard error: {said})" if said else "")
    )


def _status(port: int, path: str) -> int:
    try:
        with open_direct(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
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
            with open_direct(url, timeout=5) as response:
                document = json.loads(_read_within(response, OPENAPI_READ_S))
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


def _read_within(
    response: http.client.HTTPResponse, seconds: float, most: int = OPENAPI_MOST_BYTES
) -> bytes:
    """The body, at most ``most`` bytes of it, if it all came within ``seconds``;
    ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(most - size):
        chunks.append(chunk)
        size += len(chunk)
        if size >= most:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the document took more than {seconds:g} s")
    return b"".join(chunks)


def _stop(service: _Started) -> None:
    """Its whole process group: SIGTERM, then SIGKILL; then whatever of its tree left the
    group."""
    process = service.process
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
    for proc in service.seen.values():
        with contextlib.suppress(psutil.Error):
            if proc.is_running():  # psutil tells a reused pid apart by its start time
                proc.kill()
