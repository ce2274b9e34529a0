"""memgate's agent runs the service's code as ``python TARGET`` would, in the service's
Python, whichever version memray supports (3.8 and later), with only the standard
library. Run here without a tracker (no ``capture`` in its settings)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gate.service.interpreter import AGENT
from tests.support.agent import load_agent

# Older Pythons installed beside this one (pyenv's versions/3.X.Y/bin), where there are.
OLDER = sorted(
    str(path)
    for minor in (8, 9, 10)
    for path in Path(sys.base_prefix).parent.glob(f"3.{minor}.*/bin/python3")
)
PYTHONS = [sys.executable, *OLDER]
SHOW = (
    "import json, sys, __main__; "
    "print(json.dumps({'argv': sys.argv, 'path0': sys.path[0], "
    "'main': getattr(__main__, 'MARK', None)}))"
)


def agent(python: str, *target: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMGATE_AGENT": json.dumps({"parent": os.getpid()})}
    return subprocess.run(
        [python, str(AGENT), *target], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("python", PYTHONS)
def test_code_runs_as_python_dash_c_would(python: str, tmp_path: Path) -> None:
    done = agent(python, "-c", "MARK = 7\n" + SHOW, "a", "b", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # __main__ is the code's own module, as pickling and "import __main__" expect.
    assert seen == {"argv": ["-c", "a", "b"], "path0": "", "main": 7}


@pytest.mark.parametrize("python", PYTHONS)
def test_a_script_and_a_module_see_their_own_argv_and_path(python: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SHOW)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__main__.py").write_text(SHOW)
    script = json.loads(agent(python, "app.py", "--x", cwd=tmp_path).stdout)
    assert script["argv"] == ["app.py", "--x"] and script["path0"] == str(tmp_path)
    module = json.loads(agent(python, "-m", "pkg", "--y", cwd=tmp_path).stdout)
    assert module["argv"][1:] == ["--y"] and module["path0"] == str(tmp_path)


def test_the_services_exit_code_is_its_own(tmp_path: Path) -> None:
    done = agent(sys.executable, "-c", "import sys; sys.exit(3)", cwd=tmp_path)
    assert done.returncode == 3
    failed = agent(sys.executable, "-c", "raise ValueError('no')", cwd=tmp_path)
    assert failed.returncode == 1 and "ValueError: no" in failed.stderr


DOUBLE_FORK = """
import importlib.util, os, sys, time

spec = importlib.util.spec_from_file_location("memgate_agent", sys.argv[1])
agent = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agent)
intermediate = [0]


def late():
    # In the daemon, this runs before the agent's hook: it loses the race on purpose,
    # looking at its parent only once the intermediate process has exited.
    while intermediate[0] and os.getppid() == intermediate[0]:
        time.sleep(0.01)


os.register_at_fork(after_in_child=late)
agent._start({})
first = os.fork()
if first == 0:
    os.setsid()
    intermediate[0] = os.getpid()
    daemon = os.fork()
    if daemon == 0:
        time.sleep(600)
        os._exit(0)
    with open(sys.argv[2], "w") as out:
        out.write(str(daemon))
    os._exit(0)
os.waitpid(first, 0)
"""


def test_a_double_forked_daemon_dies_with_the_process_that_forked_it(tmp_path: Path) -> None:
    """Issue 25, case 11: a daemon forked by a process that exits at once (``setsid``
    between the forks) was reparented to init before its agent hook read its parent:
    it took init for its parent and outlived the run. The parent is read before the fork."""
    import psutil

    pidfile = tmp_path / "daemon.pid"
    done = subprocess.run(
        [sys.executable, "-c", DOUBLE_FORK, str(AGENT), str(pidfile)], timeout=30, check=True
    )
    assert done.returncode == 0
    try:
        daemon = psutil.Process(int(pidfile.read_text()))
        daemon.wait(timeout=5)  # init reaps it once it has ended
    except psutil.NoSuchProcess:
        pass  # ended already
    except psutil.TimeoutExpired:
        daemon.kill()
        pytest.fail("the daemon outlived the process that forked it")


def test_the_first_full_collections_pause_does_not_space_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first full collection frees the warm-up's garbage and pauses far longer than
    the next (a Flask worker's: 0.17-0.21 s, then 0.03-0.06 s). Spaced by it, the next came
    4 s later and a short check of a framework app read too few retained points (CI:
    7 of the 8 needed). The spacing follows the later pauses' median."""
    agent = load_agent("memgate_agent_under_test")
    pauses = iter([0.25, *[0.01] * 1000])
    monkeypatch.setattr(agent, "gc", SimpleNamespace(collect=lambda: time.sleep(next(pauses))))
    out = tmp_path / "full.jsonl"
    agent._full[0] = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    worker = threading.Thread(target=agent._collect_when_asked, args=(str(tmp_path), 0.2, 0.05))
    worker.start()
    (tmp_path / agent.RETAINED_START).write_text("")
    time.sleep(2.0)
    (tmp_path / agent.RETAINED_END).write_text("")
    worker.join(timeout=5)
    os.close(agent._full[0])
    said = [json.loads(line) for line in out.read_text().splitlines()]
    times = [s["t"] for s in said if "t" in s]
    # 0.25 s / 0.05 would space the second 5 s after the first: none would come in 2 s.
    # Spaced by the later pauses (0.01 s / 0.05 = 0.2 s), about 7 come.
    assert len(times) >= 4, said
    assert times[1] - times[0] < 1.0, said
    # ...and a pause that stays long still spaces them: the share of time holds.
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(times)), said
