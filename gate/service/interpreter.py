"""The service's own Python: which interpreter runs it, and whether it can.

memgate and the service do not share packages. The service runs in the interpreter its
command names: ``python`` (or ``python3``, ``python3.12``) as the service's ``PATH``
finds it, so that an activated virtual environment selects it; an installed console
script (``gunicorn``) with the interpreter of its ``#!`` line; or ``[service] python``
whatever the command. That interpreter needs memray, the same version as memgate's, and
nothing else of memgate's: memgate's agent (``gate/agent/memgate_agent.py``, run by path)
runs there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from gate.agent import describe_python, memgate_agent
from gate.errors import InputError, RunError
from gate.model import Frame

AGENT = Path(memgate_agent.__file__)
"""memgate's agent, run by path in the service's interpreter."""
DESCRIBE = Path(describe_python.__file__)
"""What tells memgate about that interpreter, run there by path."""
_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?$")
_SH_EXEC = re.compile(rb"""^'''exec' (?:"([^"]+)"|'([^']+)'|(\S+))""")
DESCRIBE_TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True)
class ServicePython:
    """An interpreter checked to run memgate's agent."""

    executable: str
    python: str
    """Its version, such as ``3.11.7``."""
    memray: str
    library_roots: tuple[str, ...]
    """Its standard library and site-packages: code there is not the service's."""
    distributions: dict[str, str] = dataclasses.field(default_factory=dict)
    """Its distributions and their versions."""
    packages: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Each top-level package or module, and the distributions that hold it."""
    sampler: str | None = None
    """``memgate-sampler``'s version, if it can be imported (``capture = "sampled"``)."""


def service_command(
    command: list[str], search_path: str, cwd: Path, python: str | None, where: str
) -> tuple[str, list[str]]:
    """The interpreter that runs ``command``, and what it runs: ``[script, args...]``,
    ``["-m", module, args...]`` or ``["-c", code]``.

    ``python`` (``[service] python``) is a path (relative to the service's folder) or a
    name looked up on ``search_path``, the service's ``PATH``.
    """
    head, *rest = command
    chosen = _configured(python, search_path, cwd, where) if python else None
    if _PYTHON_NAME.match(os.path.basename(head)):
        if not rest:
            raise InputError(f"{where}.command: 'python' needs a script, -m module or -c code")
        if rest[0].startswith("-") and rest[0] not in ("-m", "-c"):
            raise InputError(
                f"{where}.command: interpreter option {rest[0]!r} is not supported;"
                " use python SCRIPT, python -m MODULE or python -c CODE"
            )
        if rest[0] in ("-m", "-c") and len(rest) < 2:
            raise InputError(f"{where}.command: 'python {rest[0]}' needs what to run")
        if chosen is None:
            chosen = _which(head, search_path, cwd)
            if chosen is None:
                raise InputError(
                    f"{where}.command: {head!r} is not on the service's PATH; put the"
                    f" service's environment first on PATH, or set {where}.python"
                )
        return chosen, rest
    found = _which(head, search_path, cwd)
    if found is None:
        raise RunError(f"{where} command not found: {head!r}")
    shebang = _interpreter_of(Path(found), search_path, cwd)
    if shebang is None and Path(found).suffix != ".py":
        raise InputError(
            f"{where}.command: {found} is not a Python program; memray profiles Python"
        )
    chosen = chosen or shebang or _which("python3", search_path, cwd)
    if chosen is None:
        raise InputError(f"{where}.command: no python3 on the service's PATH to run {found}")
    return chosen, [found, *rest]


def check_python(executable: str, env: dict[str, str], cwd: Path, where: str) -> ServicePython:
    """Check that ``executable`` can run the agent: it starts, imports memray, and has
    memgate's own version of it. One line naming the fix otherwise (an input error)."""
    ours = describe_python.describe()["memray"]
    install = f"run {executable} -m pip install memray=={ours}"
    try:
        done = subprocess.run(
            [executable, str(DESCRIBE)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=DESCRIBE_TIMEOUT_S,
            check=False,
        )
    except OSError as exc:
        raise InputError(f"{where}: cannot run {executable}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{where}: {executable} did not start within {DESCRIBE_TIMEOUT_S:g} s"
        ) from None
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
        memray = found["memray"]
        described = ServicePython(
            executable=executable,
            python=str(found["python"]),
            memray=str(memray),
            library_roots=tuple(str(root) for root in found["library_roots"]),
            distributions={str(k): str(v) for k, v in found.get("distributions", {}).items()},
            packages={str(k): [str(d) for d in v] for k, v in found.get("packages", {}).items()},
            sampler=str(found["sampler"]) if found.get("sampler") else None,
        )
    except (ValueError, IndexError, KeyError, TypeError):
        said = done.stderr.strip().splitlines()
        raise InputError(
            f"{where}: {executable} is not a Python that can run memgate's agent"
            f" (exit {done.returncode}): {said[-1] if said else 'it printed nothing'}"
        ) from None
    if memray is None:
        raise InputError(
            f"{where}: {executable} cannot import memray ({found.get('problem')}): {install}"
        )
    if memray != ours:
        raise InputError(
            f"{where}: {executable} has memray {memray} and memgate has {ours}: {install}"
        )
    return described


SAMPLER_SOURCE = Path(__file__).resolve().parent.parent.parent / "sampler"
"""The heap sampler's source in memgate's checkout (``pip install`` builds it)."""


SAMPLER_VERSION = "0.2.1"
"""The heap sampler's version this memgate reads (``sampler/pyproject.toml``'s)."""


def check_sampler(python: ServicePython, where: str) -> None:
    """``capture = "sampled"`` needs this memgate's heap sampler in the service's Python:
    one line naming the fix otherwise (an input error)."""
    source = SAMPLER_SOURCE if (SAMPLER_SOURCE / "setup.py").is_file() else "memgate-sampler"
    if python.sampler is None:
        raise InputError(
            f"{where}: {python.executable} cannot import memgate_sampler, which capture ="
            f' "sampled" needs: run {python.executable} -m pip install {source}'
        )
    if python.sampler != SAMPLER_VERSION:
        raise InputError(
            f"{where}: {python.executable} has memgate-sampler {python.sampler} and memgate"
            f" reads {SAMPLER_VERSION}: run {python.executable} -m pip install --force-reinstall"
            f" {source}"
        )


def _configured(python: str, search_path: str, cwd: Path, where: str) -> str:
    found = _which(python, search_path, cwd)
    if found is None:
        raise InputError(f"{where}.python: {python!r} not found")
    return found


def _which(name: str, search_path: str, cwd: Path) -> str | None:
    """``name`` on ``search_path``; a name with a slash is a path from ``cwd``."""
    if os.sep in name:
        path = cwd / os.path.expanduser(name)
        return str(path) if os.access(path, os.X_OK) and path.is_file() else None
    found = shutil.which(name, path=search_path)
    # A relative PATH entry is memgate's folder's: the service runs in another.
    return os.path.abspath(found) if found else None


def _interpreter_of(script: Path, search_path: str, cwd: Path) -> str | None:
    """The Python that a script's ``#!`` line names (``#!/usr/bin/env python3`` looked up
    on ``search_path``; pip's ``#!/bin/sh`` + ``'''exec' PYTHON`` for long paths), or
    ``None`` when it names no Python."""
    try:
        with open(script, "rb") as text:
            first, second = text.readline(512), text.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    if words and os.path.basename(words[0]) == "sh":
        exec_line = _SH_EXEC.match(second)
        found = next((g for g in exec_line.groups() if g), b"") if exec_line else b""
        words = [found.decode(errors="replace")] if found else []
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        if not words:
            return None
        found = _which(words[0], search_path, cwd)
        words = [found] if found else []
    if not words or "python" not in os.path.basename(words[0]):
        return None
    return words[0]


def without_agent(stack: tuple[Frame, ...]) -> tuple[Frame, ...] | None:
    """``stack`` (innermost frame first) as the service's code made it: without the
    agent's frames and the ``runpy`` frames through which the agent ran the service's
    code; ``None`` for the agent's own allocations (its innermost frame is the agent's:
    its garbage-collector hook; or a thread the agent started, whose outermost frames
    are ``threading``'s and then the agent's). Only the ends of a stack are looked at:
    there are thousands of stacks."""
    agent_files = _AGENT_FILES
    if not stack or stack[0].file in agent_files:
        return None if stack else stack
    end = len(stack)
    if stack[-1].file == _AGENT_FILE:  # the main thread: the agent ran the service's code
        while end and (stack[end - 1].file in agent_files or _is_runpy(stack[end - 1].file)):
            end -= 1
        return stack[:end]
    if any(frame.file in agent_files for frame in stack[-_THREAD_DEPTH:]):
        return None
    return stack


_AGENT_FILE = str(AGENT)
_AGENT_FILES = frozenset(
    str(AGENT.parent / name) for name in ("memgate_agent.py", "census.py", "heap.py", "samples.py")
)
"""The agent and the files it loads beside it (a thread it starts may run one's code)."""
_THREAD_DEPTH = 4
"""``threading``'s frames above a thread's function: ``_bootstrap``,
``_bootstrap_inner``, ``run``, then the function."""


def _is_runpy(file: str) -> bool:
    return file == "<frozen runpy>" or os.path.basename(file) == "runpy.py"
