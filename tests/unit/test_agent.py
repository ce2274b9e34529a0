"""memgate's agent runs the service's code as ``python TARGET`` would, in the service's
Python, whichever version memray supports (3.8 and later), with only the standard
library. Run here without a tracker (no ``capture`` in its settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gate.interpreter import AGENT

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
