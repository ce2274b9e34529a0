"""``memgate init -- COMMAND...``: a first scenario and a plain locustfile for the service
the command starts, so that the first check of a real service takes minutes.

The service is probed once (:mod:`gate.service.probe`: its health path and GET routes);
each route without parameters becomes a task, each with parameters a commented example
to fill in. Nothing is written before the service has stopped, and no file is written
over.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from gate.errors import InputError, RunError
from gate.scenario.sections import NAME_PATTERN
from gate.service.probe import MOST_TASKS, NO_ROUTES, probe

HEALTH_PATH = re.compile(r"/[!-~]*")
"""A health path: a slash and visible ASCII (a URL's path, escaped as it is sent)."""


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
    # fullmatch, as the scenario's own validation matches: re.match's $ would let a
    # trailing line break through, into both file names.
    if not re.fullmatch(NAME_PATTERN, name):
        raise InputError(f"--name {name!r}: letters, digits, '.', '_' and '-' only")
    if health is not None and not HEALTH_PATH.fullmatch(health):
        raise InputError(f"--health {health!r}: a path of visible ASCII, such as /health")
    if out.exists() and not out.is_dir():  # said before the service is started, not after
        raise InputError(f"--out {out}: not a folder")
    scenario, locustfile = out / f"{name}.toml", out / f"{name}_locustfile.py"
    for path in (scenario, locustfile):
        if path.exists():
            raise InputError(f"{path} exists: memgate init writes over nothing")
    forks = server_forks(command)  # refuses what memray cannot follow, before it runs
    found = probe(command, health=health, timeout=timeout)
    load = _compiled(
        locustfile_text(name, found.gets, found.health, found.source, found.with_params),
        locustfile,
    )
    cwd = os.path.relpath(Path.cwd(), out.resolve())
    relative = os.path.relpath(scenario)  # as the command printed it, from here
    shown = scenario if relative.startswith("..") else relative
    load_said = _load_said(found.source, bool(found.gets))
    text = scenario_text(
        command, cwd, found.health, locustfile.name, load_said, str(shown), follow_fork=forks
    )
    _write(out, {locustfile: load, scenario: text})
    return scenario, locustfile


def _write(out: Path, files: dict[Path, str]) -> None:
    """Write ``files`` into the folder ``out``, made if need be; :class:`InputError` if
    it cannot be written in."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write in {out}: {exc.strerror or exc}") from None


def _compiled(source: str, path: Path) -> str:
    """``source``, once Python has compiled it: what an OpenAPI document's paths become
    must never be a locustfile that fails to import (nor code the document wrote)."""
    try:
        compile(source, str(path), "exec")
    except (SyntaxError, ValueError) as exc:
        raise RunError(
            f"the locustfile memgate init made for {path.name} does not compile ({exc}):"
            " nothing was written; this is a bug in memgate"
        ) from None
    return source


def server_forks(command: Sequence[str]) -> bool:
    """Whether the server ``command`` starts forks its workers (gunicorn: always, one
    worker at least, and the workers serve); :class:`InputError` for a server whose
    workers memray cannot follow (uvicorn ``--workers``: spawned, not forked)."""
    words = [os.path.basename(part) for part in command]
    runs = words[:1] + [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-m"]
    if any(name.startswith("gunicorn") for name in runs):
        return True
    if any(name == "uvicorn" for name in runs):
        workers = _option(command, "--workers")
        if workers is not None and workers not in ("1", "0"):
            raise InputError(
                f"uvicorn --workers {workers}: uvicorn spawns its workers, which memray"
                " cannot follow; run one worker, or gunicorn with uvicorn's worker class"
                " (-k uvicorn.workers.UvicornWorker), whose workers fork"
            )
    return False


def _option(command: Sequence[str], name: str) -> str | None:
    """The value of option ``name`` in ``command`` (``--name V`` or ``--name=V``)."""
    for i, part in enumerate(command):
        if part == name and i + 1 < len(command):
            return command[i + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    return None


def _join(command: Sequence[str]) -> str:
    """The command as one line of shell words, ``{port}`` left bare to read."""
    return " ".join(
        part if re.fullmatch(r"[\w@%+=:,./{}-]+", part) else shlex.quote(part) for part in command
    )


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


def scenario_text(
    command: Sequence[str],
    cwd: str,
    health: str,
    locustfile: str,
    load: str,
    path: str = "",
    *,
    follow_fork: bool = False,
) -> str:
    """The scenario's text; ``load``: what the first load requests and where its routes
    came from (:func:`_load_said`); ``path``: where it is written, as its comment names
    it (from the folder init ran in); ``follow_fork``: the server forks its workers."""
    path = path or locustfile.removesuffix("_locustfile.py") + ".toml"
    return f"""\
# Written by memgate init: the service, and a first load ({load}).
# Edit the locustfile so that the load is what the service serves in production, then:
#   memgate run {path}
#   memgate check {path} --record   (judged, and its history started)
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
""" + (PREFORK_PROFILE if follow_fork else "")


PREFORK_PROFILE = """
[profile]
# A prefork server: its workers serve, each recorded on its own.
follow_fork = true
"""


def _load_said(source: str, tasks: bool) -> str:
    """What the first load requests, and where its routes came from, in one phrase: the
    locustfile's docstring and the scenario's first comment say the same."""
    if tasks:
        return f"one task per GET route without parameters, from {source}"
    if source == NO_ROUTES:
        return f"its health path only; {NO_ROUTES}"
    return f"its health path only: no route without parameters answered, from {source}"


def locustfile_text(
    name: str,
    gets: Sequence[str],
    health: str,
    source: str = NO_ROUTES,
    with_params: Sequence[str] = (),
) -> str:
    """The locustfile: a task per path of ``gets`` (the health path if none), and a
    commented request for each route of ``with_params``, to fill in."""
    paths = list(gets) or [health]
    tasks = []
    used: set[str] = set()
    for path in paths:
        function = _function_name(path, used)
        used.add(function)
        # repr: a Python string literal of any text, so that nothing a document's path
        # holds (quotes, line breaks, code) can end the string.
        tasks.append(
            f"    @task\n    def {function}(self) -> None:\n        self.client.get({path!r})\n"
        )
    # repr here too: a line break in a route would end the comment, and start code.
    examples = "".join(
        f"    # self.client.get({path!r})  # a route with parameters: fill them in\n"
        for path in list(with_params)[:MOST_TASKS]
    )
    return (
        f'"""The load of scenario {name}, written by memgate init:\n'
        f'{_load_said(source, bool(gets))}."""\n\n'
        "from locust import HttpUser, constant, task\n\n\n"
        "class Visitor(HttpUser):\n"
        "    wait_time = constant(0)\n\n" + "\n".join(tasks) + ("\n" + examples if examples else "")
    )


def _function_name(path: str, used: set[str]) -> str:
    """``get_`` and the path's ASCII letters, digits and ``_``, one ``_`` for each run of
    anything else: ``\\w`` would keep characters, such as ``²``, that no identifier holds."""
    function = "get_" + (re.sub(r"[^A-Za-z0-9_]+", "_", path).strip("_") or "root")
    while function in used:
        function += "_"
    return function
