"""SIGKILL during ``memgate baseline record`` never damages the history.

The installed command records into a history of many runs (a large file widens the
moments worth hitting) and is killed at varied moments: at a random time, while it
waits for the lock, while it holds the lock (reading and validating the history), and
while its temporary file exists (writing, fsync, rename). After each kill the history
is the old one byte for byte or the old runs plus the new one, ``baseline show`` reads
it, the lock is free, and nothing left behind looks like a history; the last record
runs to the end and clears what killed writers left.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.baseline import BaselineStore, _history_adapter
from gate.cli import main
from gate.model import RunResult
from gate.result import read_result, write_result
from gate.summary import SCHEMA_VERSION, History, summarize
from tests.support import make_result

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads /proc/locks (Linux)"),
]

MEMGATE = shutil.which("memgate", path=os.path.dirname(sys.executable))
OLD_RUNS = 150
KILLS = ["random", "waiting", "locked", "writing", "writing"] * 2
"""When to kill, in a shuffled order: after a random time; while the record waits for
the lock (this test holds it); while it holds it; as soon as its temporary file exists."""


def lock_state(pid: int, lock: Path) -> str | None:
    """``held`` or ``waiting`` if process ``pid`` holds or waits for ``lock``'s flock."""
    inode = f":{os.stat(lock).st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        waiting = fields[1] == "->"
        fields = fields[2:] if waiting else fields[1:]
        if fields[0] == "FLOCK" and fields[3] == str(pid) and fields[4].endswith(inode):
            return "waiting" if waiting else "held"
    return None


def temporary_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def writing(folder: Path, before: os.stat_result) -> bool:
    """Whether a write has begun: a temporary file exists, or the history changed (as
    it would at once if it were written in place)."""
    now = os.stat(folder / "demo.json")
    changed = (now.st_ino, now.st_size, now.st_mtime_ns) != (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    return changed or bool(temporary_files(folder))


def run_ids(folder: Path) -> list[str]:
    history = BaselineStore(folder).load("demo")
    assert history is not None
    return [run.run_id for run in history.runs]


def new_run_id(result: Path) -> str:
    return summarize(read_result(result)).run_id


def wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], pause: float = 0.0005
) -> bool:
    """Poll ``condition`` until it holds (``True``) or the process ends (``False``)."""
    deadline = time.monotonic() + 30
    while process.poll() is None:
        if condition():
            return True
        assert time.monotonic() < deadline, "memgate neither took the lock nor ended"
        if pause:
            time.sleep(pause)
    return False


def record(result: Path, baselines: Path) -> list[str]:
    return [MEMGATE or "memgate", "baseline", "record", str(result), "--baselines", str(baselines)]


@pytest.fixture
def baselines(tmp_path: Path) -> Path:
    """A history of ``OLD_RUNS`` runs like the ones recorded here (``make_result``'s, its
    planted growth their way: a record judges the run first, and keeps only one that
    does not fail against the history)."""
    summary = summarize(read_result(_written(tmp_path / "old.json", make_result())))
    runs = [dataclasses.replace(summary, run_id=f"{i:016x}") for i in range(OLD_RUNS)]
    folder = tmp_path / "baselines"
    folder.mkdir()
    history = History(SCHEMA_VERSION, "demo", tuple(runs))
    (folder / "demo.json").write_bytes(_history_adapter().dump_json(history, indent=2))
    (folder / ".demo.lock").touch()
    return folder


def _written(path: Path, result: RunResult) -> Path:
    write_result(result, path)
    return path


def kill_record(kill: str, result: Path, baselines: Path, rng: random.Random) -> tuple[str, int]:
    """Start recording ``result``, SIGKILL it at the moment ``kill`` asks for; where it
    was when killed (or ``ended`` if it ended first) and its exit code."""
    lock = baselines / ".demo.lock"
    before = os.stat(baselines / "demo.json")
    holder = open(lock, "a+b")  # noqa: SIM115
    if kill == "waiting":
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    # --keep past the history's length: the new history is exactly the old runs and one.
    process = subprocess.Popen(
        [*record(result, baselines), "--keep", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if kill == "random":
            time.sleep(rng.uniform(0, 2.0))  # about a record's whole time
        elif kill == "waiting":
            wait_for(lambda: lock_state(process.pid, lock) == "waiting", process)
        elif kill == "locked":
            wait_for(lambda: lock_state(process.pid, lock) == "held", process)
            time.sleep(rng.uniform(0, 0.15))  # reading and validating the history: ~0.2 s
        else:
            wait_for(lambda: lock_state(process.pid, lock) == "held", process)
            # The write takes milliseconds: watch for it without pausing.
            wait_for(lambda: writing(baselines, before), process, pause=0)
        if process.poll() is not None:
            return "ended", process.wait()
        moment = "writing" if writing(baselines, before) else lock_state(process.pid, lock)
        process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=30)
        if code == 0:  # it ended between the look and the signal (seen in CI once)
            return "ended", code
        return moment or "outside the lock", code
    finally:
        holder.close()


def test_sigkill_during_record_keeps_the_history_whole(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert MEMGATE, "memgate is not installed beside this interpreter"
    rng = random.Random(7)
    results = []
    for number in range(len(KILLS) + 1):
        result = make_result()
        result = dataclasses.replace(result, settings={**result.settings, "run": number})
        results.append(tmp_path / f"result-{number}.json")
        write_result(result, results[-1])

    moments = []
    for kill, result in zip(rng.sample(KILLS, len(KILLS)), results, strict=False):
        before = (baselines / "demo.json").read_bytes()
        before_ids = run_ids(baselines)
        moment, code = kill_record(kill, result, baselines, rng)
        assert code == (0 if moment == "ended" else -signal.SIGKILL), (kill, moment)
        moments.append(moment)

        # The lock is free: the system released the killed holder's flock.
        with open(baselines / ".demo.lock", "a+b") as probe:
            fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The history is the old one, or the old runs and the new one; never half.
        after_ids = run_ids(baselines)
        if after_ids == before_ids:
            assert (baselines / "demo.json").read_bytes() == before, moment
        else:
            assert after_ids == [*before_ids, new_run_id(result)], moment
        assert main(["baseline", "show", "demo", "--baselines", str(baselines)]) == 0
        assert "baseline: demo" in capsys.readouterr().out
        # Left behind at most: the lock and hidden temporary files, nothing named *.json.
        others = set(os.listdir(baselines)) - {"demo.json", ".demo.lock"}
        assert all(name.startswith(".demo.json.") and name.endswith(".tmp") for name in others)

    assert {"waiting", "held", "writing"} <= set(moments), moments

    # The next record takes the lock, runs to the end, and clears killed writers' files.
    before_ids = run_ids(baselines)
    last = subprocess.run(record(results[-1], baselines), capture_output=True, text=True)
    assert last.returncode == 0, last.stderr
    # Without --keep, the scenario's 20 runs are kept: the last 19 and the new one.
    assert run_ids(baselines) == [*before_ids[-19:], new_run_id(results[-1])]
    assert temporary_files(baselines) == []
    show = subprocess.run(
        [MEMGATE, "baseline", "show", "demo", "--baselines", str(baselines)],
        capture_output=True,
        text=True,
    )
    assert (show.returncode, show.stderr) == (0, "")
