"""Choosing the service's interpreter and checking it can run memgate's agent."""

from __future__ import annotations

import os
import sys
import venv
from pathlib import Path

import pytest

from gate.errors import InputError, RunError
from gate.model import Frame
from gate.service.interpreter import AGENT, check_python, service_command, without_agent

HERE = Path.cwd()


def executable(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A folder holding a ``python`` and a ``python3`` (links to this interpreter)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("python", "python3"):
        (folder / name).symlink_to(sys.executable)
    return folder


def test_python_is_the_one_the_services_path_finds(bin_dir: Path) -> None:
    python, target = service_command(
        ["python", "-m", "uvicorn", "app:app"], str(bin_dir), HERE, None, "service"
    )
    assert python == str(bin_dir / "python")
    assert target == ["-m", "uvicorn", "app:app"]


def test_a_configured_python_wins_whatever_the_command(bin_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "env" / "bin"
    other.mkdir(parents=True)
    (other / "python").symlink_to(sys.executable)
    python, target = service_command(
        ["python3", "app.py", "--x"], str(bin_dir), tmp_path, "env/bin/python", "service"
    )
    assert (python, target) == (str(tmp_path / "env/bin/python"), ["app.py", "--x"])
    with pytest.raises(InputError, match=r"^service\.python: 'nowhere/python' not found$"):
        service_command(["python", "app.py"], str(bin_dir), tmp_path, "nowhere/python", "service")


def test_python_not_on_the_path_says_how_to_choose_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"'python' is not on the service's PATH.*\.python$"):
        service_command(["python", "app.py"], str(tmp_path), HERE, None, "service")


@pytest.mark.parametrize(
    ("first_lines", "expected"),
    [
        ("#!{python}\n", "{python}"),
        ("#!/usr/bin/env python3\n", "{bin}/python3"),
        ("#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n", "{python}"),
    ],
)
def test_a_console_script_runs_with_its_own_interpreter(
    bin_dir: Path, tmp_path: Path, first_lines: str, expected: str
) -> None:
    script = executable(
        tmp_path / "serve", first_lines.format(python=sys.executable) + "print('hi')\n"
    )
    python, target = service_command(
        ["serve", "--port", "1"], str(bin_dir) + os.pathsep + str(tmp_path), HERE, None, "service"
    )
    assert python == expected.format(python=sys.executable, bin=bin_dir)
    assert target == [str(script), "--port", "1"]


def test_non_python_program_is_refused(tmp_path: Path) -> None:
    executable(tmp_path / "server", b"\x7fELF\x02\x01")
    with pytest.raises(InputError, match="is not a Python program"):
        service_command(["server"], str(tmp_path), HERE, None, "service")


def test_missing_program_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="service command not found: 'no-such-server'"):
        service_command(["no-such-server"], str(tmp_path), HERE, None, "service")


@pytest.mark.parametrize("command", [["python"], ["python", "-u", "app.py"]])
def test_unsupported_python_invocations(command: list[str], bin_dir: Path) -> None:
    with pytest.raises(InputError, match=r"service\.command"):
        service_command(command, str(bin_dir), HERE, None, "service")


def test_this_interpreter_can_run_the_agent() -> None:
    found = check_python(sys.executable, dict(os.environ), HERE, "service")
    assert found.memray == __import__("importlib.metadata").metadata.version("memray")
    assert found.python == ".".join(map(str, sys.version_info[:3]))
    assert any(root.endswith("site-packages") for root in found.library_roots)


def test_an_interpreter_without_memray_gets_the_command_that_installs_it(tmp_path: Path) -> None:
    venv.create(tmp_path / "bare", with_pip=False)
    python = str(tmp_path / "bare" / "bin" / "python")
    with pytest.raises(InputError) as caught:
        check_python(python, dict(os.environ), HERE, "services.api")
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"services.api: {python} cannot import memray (ModuleNotFoundError")
    assert message.endswith(f"run {python} -m pip install memray=={found_memray()}")


def test_an_interpreter_with_another_memray_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake = site / "memray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    dist = site / "memray-1.9.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: memray\nVersion: 1.9.0\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    with pytest.raises(
        InputError, match=r"has memray 1\.9\.0 and memgate has .*pip install memray=="
    ):
        check_python(sys.executable, env, HERE, "service")


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("/no/such/python", "service: cannot run /no/such/python: No such file or directory"),
        ("/bin/false", "service: /bin/false is not a Python that can run memgate's agent"),
    ],
)
def test_what_is_no_python_is_one_line(program: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        check_python(program, dict(os.environ), HERE, "service")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def found_memray() -> str:
    import importlib.metadata

    return importlib.metadata.version("memray")


def test_the_agents_frames_are_cut_from_every_stack() -> None:
    app = Frame("handle", "/srv/app.py", 10)
    main = Frame("<module>", "/srv/app.py", 1)
    runpy = [
        Frame("_run_code", "/usr/lib/python3.11/runpy.py", 88),
        Frame("run_path", "<frozen runpy>", 291),
    ]
    agent = [
        Frame("_run", str(AGENT), 150),
        Frame("main", str(AGENT), 200),
        Frame("<module>", str(AGENT), 210),
    ]
    assert without_agent((app, main, *runpy, *agent)) == (app, main)
    thread = Frame("run", "/usr/lib/python3.11/threading.py", 975)
    assert without_agent((app, thread)) == (app, thread)  # started elsewhere: left as it is
    # The agent's own allocations (its garbage-collector hook, its writer thread) are not
    # the service's.
    assert without_agent((agent[0], app, main, *runpy, *agent)) is None
    writer = Frame("_write_gc_forever", str(AGENT), 66)
    bootstrap = [thread, Frame("_bootstrap_inner", thread.file, 1045)]
    assert without_agent((Frame("dumps", "/usr/lib/json.py", 1), writer, *bootstrap)) is None
    # Nor what a thread runs in a file the agent loads beside it (the samples' writer),
    # or its garbage-collector hook reading the heap's counters.
    samples = Frame("forever", str(AGENT.parent / "samples.py"), 80)
    assert without_agent((Frame("time", "<built-in>", 0), samples, *bootstrap)) is None
    counters = Frame("fields", str(AGENT.parent / "heap.py"), 90)
    assert without_agent((counters, app, main, *runpy, *agent)) is None


def test_a_relative_path_entry_is_made_absolute(bin_dir: Path, tmp_path: Path) -> None:
    python, _ = service_command(
        ["python", "app.py"], os.path.relpath(bin_dir), tmp_path, None, "service"
    )
    assert python == str(bin_dir / "python")


def test_pips_long_path_header_with_spaces(tmp_path: Path) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()
    (folder / "python").symlink_to(sys.executable)
    header = f"#!/bin/sh\n'''exec' \"{folder / 'python'}\" \"$0\" \"$@\"\n' '''\n"
    script = executable(tmp_path / "serve", header + "print('hi')\n")
    python, target = service_command(["serve"], str(tmp_path), HERE, None, "service")
    assert (python, target) == (str(folder / "python"), [str(script)])


@pytest.mark.parametrize("flag", ["-m", "-c"])
def test_python_dash_m_or_c_needs_what_to_run(flag: str, bin_dir: Path) -> None:
    with pytest.raises(InputError, match=f"'python {flag}' needs what to run"):
        service_command(["python", flag], str(bin_dir), HERE, None, "service")
