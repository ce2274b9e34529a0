"""memgate's agent: runs inside the service, in the service's own interpreter.

memgate starts the service as ``SERVICE_PYTHON path/to/agent.py TARGET...``, with its
settings in ``$MEMGATE_AGENT`` (JSON, taken out of the environment before the service
runs). The agent

- starts memray's tracker: ``"capture": "live"`` streams to memgate over a socket on
  ``port`` (the tracker waits until memgate has connected), ``"file"`` writes the
  capture file ``file`` as ``memray run`` would;
- counts garbage collections per generation and the time spent in them, and appends the
  running totals to ``GC.<pid>.<start ns>.jsonl`` every 100 ms (the spacing doubles
  every 1,000 lines, as ``gate.spacing`` thins memgate's own samples);
- with ``follow_fork``, in every forked process (a prefork server's workers) starts
  counting afresh and, live, starts a tracker of its own on a free port that it
  announces in ``FOLDER/live.<pid>.port`` for memgate to connect to (a file capture
  follows forks by itself: ``FILE.<pid>``);
- then runs TARGET (a script, ``-m module`` or ``-c code``) as ``__main__`` with its
  own ``sys.argv`` and ``sys.path``.

It imports only the standard library and memray: the service's interpreter need have
nothing else of memgate's. Its frames are cut from every stack memgate reports.
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import socket
import sys
import threading
import time
from typing import Any

SETTINGS = "MEMGATE_AGENT"
DESCRIBE = "--describe"
"""``PYTHON agent.py --describe`` prints what memgate needs to know of the interpreter."""
GC_INTERVAL_S = 0.1
GC_PER_DOUBLING = 1000
"""Lines written at each spacing before it doubles (memgate's ``gate.spacing``)."""
PORT_FILE = "live.{pid}.port"
READING_ENDED = "live.ended"
"""Written by memgate once it reads no more: a process forked later gets no tracker."""


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
_trackers: list[Any] = []
"""The trackers this process runs: kept alive until it exits."""


def _write_gc_forever(prefix: str) -> None:
    # The start time keeps a process that reuses a dead worker's pid out of its file.
    path = f"{prefix}.{os.getpid()}.{time.time_ns()}.jsonl"
    interval, written = GC_INTERVAL_S, 0
    with open(path, "a", buffering=1) as out:
        while True:
            line = {
                "t": time.time(),
                "collections": list(_counts.collections),
                "seconds": round(_counts.seconds, 6),
            }
            out.write(json.dumps(line) + "\n")
            written += 1
            if written % GC_PER_DOUBLING == 0:  # a soak of hours writes a few thousand
                interval *= 2
            time.sleep(interval)


def _count_gc(prefix: str) -> None:
    threading.Thread(target=_write_gc_forever, args=(prefix,), daemon=True).start()


def _tracker(settings: dict[str, Any], port: int | None) -> Any:
    import memray

    destination: Any
    if port is None:
        destination = memray.FileDestination(
            settings["file"], overwrite=True, compress_on_exit=True
        )
    else:
        destination = memray.SocketDestination(server_port=port, address="127.0.0.1")
    return memray.Tracker(
        destination=destination,
        native_traces=bool(settings.get("native")),
        trace_python_allocators=bool(settings.get("trace_python_allocators")),
        follow_fork=port is None and bool(settings.get("follow_fork")),
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _track_fork(settings: dict[str, Any]) -> None:
    """In a forked process: a tracker of its own, announced to memgate."""
    # memray's tracker in the parent named its threads through attributes on
    # threading.Thread; a new tracker asserts they are not there.
    for name in ("_name", "_ident"):
        if name in vars(threading.Thread):
            delattr(threading.Thread, name)
    folder = settings["folder"]
    if os.path.exists(os.path.join(folder, READING_ENDED)):
        return  # memgate no longer reads: a tracker would wait for it for ever
    port = _free_port()
    path = os.path.join(folder, PORT_FILE.format(pid=os.getpid()))
    with open(path + ".tmp", "w") as out:
        out.write(f"{port}\n")
    os.replace(path + ".tmp", path)
    tracker = _tracker(settings, port)
    tracker.__enter__()  # waits until memgate has connected
    _trackers[:] = [tracker]


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing):
    the service dies with memgate, even one killed with SIGKILL, and a forked worker
    with the service. ``parent`` is the pid it was started by, if known: one that died
    already is not waited for."""
    parent = os.getppid() if parent is None else parent
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)


_forking_thread = [True]
"""Whether the fork under way was made by the main thread."""


def _before_fork() -> None:
    _forking_thread[0] = threading.current_thread() is threading.main_thread()


def _after_fork(settings: dict[str, Any]) -> None:
    # The kernel ties the parent-death signal to the thread that forked: only a fork
    # of the main thread (a prefork server's worker) may have it, not a process pool
    # started from a request's thread, which would die when that thread ends.
    if _forking_thread[0]:
        die_with_parent()
    _counts.collections = [0, 0, 0]
    _counts.seconds = 0.0
    if settings.get("gc"):
        _count_gc(settings["gc"])
    if settings.get("capture") == "live" and settings.get("follow_fork"):
        _track_fork(settings)


def _run(target: list[str]) -> None:
    """Run the target as ``python TARGET...`` would: ``sys.argv``, and ``sys.path[0]``
    (the current folder for ``-m``, ``""`` for ``-c``, the script's real folder for a
    script) unless the interpreter was told not to add it (``-P``, ``PYTHONSAFEPATH``,
    ``-I``)."""
    if not (getattr(sys.flags, "safe_path", False) or sys.flags.isolated):
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
        import types

        sys.argv = ["-c", *target[2:]]
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main  # as python -c: import __main__ finds the code's
        exec(compile(target[1], "<string>", "exec"), main.__dict__)
    else:
        sys.argv = list(target)
        runpy.run_path(target[0], run_name="__main__")


def library_roots() -> list[str]:
    """Folders of this interpreter whose code is not the service's: the standard library
    and site-packages, of the environment and of the Python it was made from."""
    import sysconfig

    names = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {sysconfig.get_path(name) for name in names}
    roots |= {
        sysconfig.get_path(name, vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
        for name in names
    }
    return sorted(root for root in roots if root)


def describe() -> dict[str, Any]:
    """This interpreter: its version, memray's (``None`` when it cannot be imported,
    with the reason) and its library folders."""
    import importlib.metadata
    import platform

    try:
        import memray  # noqa: F401 - importable, not only installed

        found, problem = importlib.metadata.version("memray"), None
    except Exception as exc:
        found, problem = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return {
        "executable": sys.executable,
        "python": platform.python_version(),
        "memray": found,
        "problem": problem,
        "library_roots": library_roots(),
    }


def main() -> None:
    if sys.argv[1:] == [DESCRIBE]:
        print(json.dumps(describe()))
        return
    settings = json.loads(os.environ.pop(SETTINGS, "{}") or "{}")
    die_with_parent(settings.get("parent"))
    if settings.get("capture") in ("live", "file"):
        port = settings["port"] if settings["capture"] == "live" else None
        # The agent's threads start under the tracker: a thread memray has not seen
        # start corrupts a file capture when the process forks.
        with _tracker(settings, port):  # live: waits until memgate has connected
            _start(settings)
            _run(sys.argv[1:])
    else:
        _start(settings)
        _run(sys.argv[1:])


def _start(settings: dict[str, Any]) -> None:
    """Count garbage collections, and be ready for forks."""
    if settings.get("gc"):
        gc.callbacks.append(_counts.hook)
        _count_gc(settings["gc"])
    os.register_at_fork(before=_before_fork, after_in_child=lambda: _after_fork(settings))


if __name__ == "__main__":
    main()
