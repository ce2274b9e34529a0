"""The garbage-collector probe: runs inside the service, before the service's own code.

memgate starts the service as ``memray run ... gate/_gc_probe.py TARGET...``: this file
is memray's script; it registers a ``gc.callbacks`` hook that counts collections per
generation and the time spent in them, starts a thread that appends the running totals
to ``$MEMGATE_GC_PROBE.<pid>.jsonl`` every 100 ms, and then runs TARGET (a script,
``-m module`` or ``-c code``) as ``__main__`` with its own ``sys.argv`` and
``sys.path``. A forked process (a prefork worker) starts counting afresh in its own file.

It imports nothing from memgate: the service's interpreter may only have memray.
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import sys
import threading
import time

INTERVAL_S = 0.1


class _Counts:
    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = 0.0
        self.started = 0.0

    def hook(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self.started
        generation = info.get("generation", 0)
        if 0 <= generation < 3:
            self.collections[generation] += 1


_counts = _Counts()


def _write_forever(prefix: str) -> None:
    # The start time keeps a process that reuses a dead worker's pid out of its file.
    path = f"{prefix}.{os.getpid()}.{time.time_ns()}.jsonl"
    with open(path, "a", buffering=1) as out:
        while True:
            line = {
                "t": time.time(),
                "collections": list(_counts.collections),
                "seconds": round(_counts.seconds, 6),
            }
            out.write(json.dumps(line) + "\n")
            time.sleep(INTERVAL_S)


def _start(prefix: str) -> None:
    threading.Thread(target=_write_forever, args=(prefix,), daemon=True).start()


def _after_fork(prefix: str) -> None:
    _counts.collections = [0, 0, 0]
    _counts.seconds = 0.0
    _start(prefix)


def _run(target: list[str]) -> None:
    """Run the target as ``python TARGET...`` would: ``sys.argv``, and ``sys.path[0]``
    (the current folder for ``-m``, ``""`` for ``-c``, the script's real folder for a
    script) unless the interpreter was told not to add it (``-P``, ``PYTHONSAFEPATH``,
    ``-I``)."""
    if not (sys.flags.safe_path or sys.flags.isolated):
        if target[0] == "-m":
            sys.path[0] = os.getcwd()
        elif target[0] == "-c":
            sys.path[0] = ""
        else:
            sys.path[0] = os.path.dirname(os.path.realpath(target[0]))
    if target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    elif target[0] == "-c":
        sys.argv = ["-c", *target[2:]]
        exec(compile(target[1], "<string>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = list(target)
        runpy.run_path(target[0], run_name="__main__")


if __name__ == "__main__":
    prefix = os.environ.get("MEMGATE_GC_PROBE", "")
    if prefix:
        gc.callbacks.append(_counts.hook)
        _start(prefix)
        os.register_at_fork(after_in_child=lambda: _after_fork(prefix))
    _run(sys.argv[1:])
