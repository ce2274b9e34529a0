"""memgate's agent: runs inside the service, in the service's own interpreter.

memgate starts the service as ``SERVICE_PYTHON path/to/agent.py TARGET...``, with its
settings in ``$MEMGATE_AGENT`` (JSON, taken out of the environment before the service
runs). The agent

- starts memray's tracker: ``"capture": "live"`` streams to memgate over a socket on
  ``port`` (the tracker waits until memgate has connected), ``"file"`` writes the
  capture file ``file`` as ``memray run`` would;
- with ``"capture": "counters"`` or ``"sampled"``, starts no tracker: it reads the bytes
  its allocators hold for the process (pymalloc's allocated blocks, CPython's own
  statistics, and malloc's bytes in use, glibc's ``mallinfo2``) and its RSS, and appends
  them to
  ``HEAP.<pid>.<start ns>.jsonl`` every 100 ms and right after each full collection
  (in its line of ``full.<pid>.jsonl``): no allocation is traced; ``"sampled"`` also
  starts the heap sampler (``samples.py``): one allocation in ``rate`` bytes sampled, and
  the live bytes per stack written every 0.5 s and right after each full collection;
- counts garbage collections per generation and the time spent in them, and appends the
  running totals to ``GC.<pid>.<start ns>.jsonl`` every 100 ms (the spacing doubles
  every 1,000 lines, as ``gate.spacing`` thins memgate's own samples);
- with ``retained``, once memgate asks (the file ``FOLDER/retained.start`` appears, when
  the warm-up is over) and until it says the load ended (``FOLDER/retained.end``), runs a
  full collection (``gc.collect()``) every ``every_s`` seconds or more, spaced so that
  their pauses take at most ``share`` of the time; every full collection of the
  process (the agent's, and the service's own) is a line of ``FOLDER/full.<pid>.jsonl``
  written as it ends: its end (``t``), its pause and whether the agent made it
  (``forced``), for the agent's the size of a marker allocated right after (``mark``);
  and ``{"soon": true}`` shortly before each of the agent's spaced 0.4 s or more.
  memgate reads the heap right after each, once the stream shows the marker: what
  survived it;
- takes a census of the garbage collector's objects when memgate asks for one (the
  file ``FOLDER/census.LABEL`` appears: ``start`` once the warm-up is over, ``end``
  once the load has ended) and writes it to ``FOLDER/census.LABEL.<pid>.json``: the
  objects reachable from the roots (modules, threads' frames) counted by type, the
  containers' lengths, the objects no other holds (a reference native code kept) by
  type and, at the end, the path from a root to each container that grew (``census.py``,
  loaded by path beside the agent);
- with ``follow_fork``, in every forked process (a prefork server's workers) starts
  counting afresh and, live, starts a tracker of its own on a free port that it
  announces in ``FOLDER/live.<pid>.port`` for memgate to connect to (a file capture
  follows forks by itself: ``FILE.<pid>``);
- with ``routes`` (a folder), once memgate asks (the file ``FOLDER/routes.request``
  appears) lists the routes the service's web framework knows (Flask's ``url_map``,
  Django's URL resolver, Starlette's routes: only a framework already imported is
  looked at) in ``FOLDER/routes.<pid>.json``, for ``memgate init``;
- then runs TARGET (a script, ``-m module`` or ``-c code``) as ``__main__`` with its
  own ``sys.argv`` and ``sys.path``.

It imports only the standard library and memray: the service's interpreter need have
nothing else of memgate's. Its frames are cut from every stack memgate reports.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import json
import os
import runpy
import socket
import statistics
import sys
import threading
import time
from typing import Any

SETTINGS = "MEMGATE_AGENT"
GC_INTERVAL_S = 0.1
GC_PER_DOUBLING = 1000
"""Lines written at each spacing before it doubles (memgate's ``gate.spacing``)."""
PORT_FILE = "live.{pid}.port"
READING_ENDED = "live.ended"
"""Written by memgate once it reads no more: a process forked later gets no tracker."""
CENSUS_REQUEST = "census.{label}"
CENSUS_FILE = "census.{label}.{pid}.json"
CENSUS_LABELS = ("start", "end")
CENSUS_POLL_S = 0.05
ROUTES_REQUEST = "routes.request"
ROUTES_FILE = "routes.{pid}.json"
HEAP_FILE = "heap.{pid}.{ns}.jsonl"
"""Counters: ``{"t": time, "heap": bytes, "rss": bytes}`` every ``HEAP_INTERVAL_S``, and
right before the end's census."""
HEAP_INTERVAL_S = 0.1
HEAP_MAX_INTERVAL_S = 1.0
FULL_FILE = "full.{pid}.jsonl"
"""One line per full collection of the process: ``{"t": end, "pause": s, "forced": b}``,
and ``"mark": size`` for the agent's; ``{"soon": true}`` before a spaced-out one."""
RETAINED_START = "retained.start"
RETAINED_END = "retained.end"
RETAINED_POLL_S = 0.02
"""How often the collecting thread looks for memgate's files."""
MARK_BYTES = 3000
MARK_SPREAD = 997
"""The agent's marker after its n-th collection is ``MARK_BYTES + n % MARK_SPREAD`` bytes:
its size (``"mark"`` in the collection's line, as memray records it) tells this
collection's from the one before."""
MARKER_FUNCTION = "_memgate_marker"
"""The function that allocates the marker, and nothing else: memgate finds it by this
name on the stack of the allocation of the marker's size."""
RETAINED_WARN_S = 0.1
"""So long before each of its collections the agent writes ``{"soon": true}``: memgate
then starts no other reading, to read the heap as soon as the collection ended."""


class _Counts:
    def __init__(self) -> None:
        self.collections, self.seconds, self.started = [0, 0, 0], 0.0, 0.0

    def hook(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        pause = time.perf_counter() - self.started
        generation = info.get("generation", 0)
        if _full[1] == "true":  # the agent's collection: it writes its own line
            return
        self.seconds += pause  # the service's own work
        if 0 <= generation < 3:
            self.collections[generation] += 1
        if generation == 2 and _full[0] is not None:
            fields = _heap[0].fields() if _heap[0] is not None else ""
            line = f'{{"t": {time.time():.6f}, "pause": {pause:.6f}, "forced": false{fields}}}\n'
            # One write of a short line to a file opened to append: never interleaved.
            with contextlib.suppress(OSError):
                os.write(_full[0], line.encode())


_counts = _Counts()


_heap: list[Any] = [None]
_samples: list[Any] = [None]
"""Sampling (``"capture": "sampled"``): ``samples.py``'s ``Samples``."""
COUNTING = ("counters", "sampled")
"""Counting (``"capture": "counters"``): the heap's counters (``heap.py``'s ``Heap``)."""


_heap_fd: list[Any] = [None]
"""The file this process's heap counters are written to (``HEAP_FILE``)."""


def _write_heap_forever(folder: str) -> None:
    """The heap's counters, a line every ``HEAP_INTERVAL_S`` (doubled every 1,000 lines,
    up to ``HEAP_MAX_INTERVAL_S``), into a file held open as long as the process runs the
    agent: memgate tells a process that exec'd another program by its file no longer
    being open in it (it is opened close-on-exec)."""
    if _heap[0].read() is None:
        return  # no file: memgate says the heap could not be read
    # The start time keeps a process that reuses a dead worker's pid out of its file.
    name = HEAP_FILE.format(pid=os.getpid(), ns=time.time_ns())
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    _heap_fd[0] = os.open(os.path.join(folder, name), flags, 0o644)
    interval, written = HEAP_INTERVAL_S, 0
    while True:
        _write_heap_point()
        written += 1
        if written % GC_PER_DOUBLING == 0:  # a soak's file grows by 3,600 lines an hour
            interval = min(2 * interval, HEAP_MAX_INTERVAL_S)
        time.sleep(interval)


def _write_heap_point() -> None:
    """A line of the heap's counters now, if this process writes them: one write of a
    short line to a file opened to append, never interleaved with another thread's."""
    if _heap_fd[0] is not None:
        line = f'{{"t": {time.time():.6f}{_heap[0].fields()}}}\n'
        with contextlib.suppress(OSError):
            os.write(_heap_fd[0], line.encode())


_full: list[Any] = [None, "false", None]
"""The file descriptor full collections are written to (``FULL_FILE``), whether the one
under way is the agent's (``"true"``: the agent writes its line itself), and the marker
allocated after the agent's last."""


def _own_collection() -> None:
    """A full collection of the agent's: the collector's callback leaves it to the
    agent (its line, and no count of the service's own)."""
    _full[1] = "true"
    try:
        gc.collect()
    finally:
        _full[1] = "false"


def _collect_when_asked(folder: str, every_s: float, share: float) -> None:
    """Once memgate asks, a full collection every ``every_s`` seconds, or as much more as
    keeps their pauses within ``share`` of the time, until memgate says the load ended.
    The spacing follows the median of the last pauses, not counting the first: it frees
    the warm-up's garbage (a Flask worker's took 0.17-0.21 s, the next 0.03-0.06 s), and
    spaced by it the next came 4 s later, a third of a short check."""
    start = os.path.join(folder, RETAINED_START)
    end = os.path.join(folder, RETAINED_END)
    while not os.path.exists(start):
        if os.path.exists(end):
            return
        time.sleep(RETAINED_POLL_S)
    pauses: collections.deque[float] = collections.deque(maxlen=3)
    for seq in itertools.count():
        if os.path.exists(end):
            return
        pause = _collect_once(seq)
        if seq:
            pauses.append(pause)
        typical = statistics.median(pauses) if pauses else 0.0
        interval = max(every_s, typical / share)
        due = time.monotonic() + interval
        if not _sleep_until(due - RETAINED_WARN_S, end):
            return
        # memgate starts no reading meanwhile: spaced out, a collection is worth waiting for.
        if _full[0] is not None and interval >= 4 * RETAINED_WARN_S:
            with contextlib.suppress(OSError):
                os.write(_full[0], b'{"soon": true}\n')
        if not _sleep_until(due, end):
            return


def _collect_once(seq: int) -> float:
    """The agent's ``seq``-th full collection, its line (and, sampling, what the samples
    hold right after it, at its time): its pause."""
    clock = time.perf_counter()
    _own_collection()
    # Spaced by the pause (how long the service was held), on a busy machine too.
    pause = time.perf_counter() - clock
    # Allocated once the collection ended, kept until the next: memgate reads the
    # heap only once its stream shows an allocation of this size alive.
    size = MARK_BYTES + seq % MARK_SPREAD
    _full[2] = _memgate_marker(size)
    fields = _heap[0].fields() if _heap[0] is not None else ""
    ended = time.time()
    line = (
        f'{{"t": {ended:.6f}, "pause": {pause:.6f}, "forced": true,'
        f' "mark": {sys.getsizeof(_full[2])}{fields}}}\n'
    )
    if _full[0] is not None:
        with contextlib.suppress(OSError):
            os.write(_full[0], line.encode())
    if _samples[0] is not None:  # what the samples hold right after it, at its time
        with contextlib.suppress(OSError, ValueError):
            _samples[0].write(round(ended, 6))
    return pause


def _memgate_marker(size: int) -> bytes:
    """The marker: one allocation on this function's stack. Repeating a constant makes
    no other (``bytes(size)`` leaves its arguments' tuple on a free list, which memray
    counts alive until the next full collection empties it)."""
    return b"\0" * size


def _sleep_until(when: float, end: str) -> bool:
    """Sleep until ``time.monotonic()`` is ``when``; ``False`` if ``end`` appeared."""
    while time.monotonic() < when:
        if os.path.exists(end):
            return False
        time.sleep(min(RETAINED_POLL_S * 5, max(when - time.monotonic(), 0.0)))
    return not os.path.exists(end)


def _watch_full_collections(settings: dict[str, Any]) -> None:
    """Write every full collection of this process, and make them when memgate asks."""
    retained = settings.get("retained")
    if not retained:
        return
    folder = settings["folder"]
    path = os.path.join(folder, FULL_FILE.format(pid=os.getpid()))
    try:
        _full[0] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:
        return  # memgate then judges the heap at every point, and says why
    args = (folder, float(retained["every_s"]), float(retained["share"]))
    _daemon(_collect_when_asked, *args)


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


_HERE = os.path.dirname(os.path.abspath(__file__))
_census: list[Any] = [None]
"""When memgate asks for censuses: ``census.py``, which takes them."""
_routes: list[Any] = [None]
"""``memgate init``'s probe: ``routes.py``, which lists the framework's routes."""


def _beside(name: str) -> Any:
    """``NAME.py`` beside the agent, loaded by path as the agent is (the service's
    interpreter has no memgate to import): only for a job asked for, and at the start,
    before the service's code runs, so that its code is in no measured point."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"memgate_agent_{name}", os.path.join(_HERE, f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _daemon(target: Any, *args: Any) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


def _census_when_asked(folder: str) -> None:
    """Take each census once memgate asks for it, in order; then end."""
    for label in CENSUS_LABELS:
        _wait_for(os.path.join(folder, CENSUS_REQUEST.format(label=label)))
        _take_census(folder, label)


def _wait_for(request: str) -> None:
    """Wait until memgate writes the file ``request`` (it asks for a job so)."""
    while not os.path.exists(request):
        time.sleep(CENSUS_POLL_S)


def _point_at_end(folder: str) -> None:
    """In a process that takes no census (forked once the start's was asked): its last
    point once the end's census is asked, as a process that takes it writes one."""
    _wait_for(os.path.join(folder, CENSUS_REQUEST.format(label=CENSUS_LABELS[-1])))
    _write_heap_point()


def _take_census(folder: str, label: str) -> None:
    """Take the census ``label`` and write it: in a function of its own, so that none of
    it outlives the writing (kept in the loop's locals through the load, the start's
    census was a step of 130 KiB in the curve)."""
    path = os.path.join(folder, CENSUS_FILE.format(label=label, pid=os.getpid()))
    try:
        if label == CENSUS_LABELS[0]:
            taken = _census[0].light_census()
        else:
            # The load has ended: a point after it, before the census, tells memgate
            # this process ran through the load (memgate waits for no other).
            _write_heap_point()
            taken = _census[0].census(_read_census(folder, CENSUS_LABELS[0]), _own_collection)
    except Exception as exc:  # a census tells, it must never break the service
        taken = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    try:
        text = json.dumps({"label": label, **taken})  # the C encoder: json.dump's is Python
        del taken
        with open(path + ".tmp", "w") as out:
            out.write(text)
        del text
        os.replace(path + ".tmp", path)
    except (OSError, ValueError, TypeError):
        pass  # memgate waits for it no longer than its timeout


def _read_census(folder: str, label: str) -> dict[str, Any] | None:
    path = os.path.join(folder, CENSUS_FILE.format(label=label, pid=os.getpid()))
    try:
        with open(path) as source:
            found: dict[str, Any] = json.load(source)
            return found
    except (OSError, ValueError):
        return None  # a fork started after the start's census: it took none


def _routes_when_asked(folder: str) -> None:
    """List the framework's routes once memgate asks for them (``ROUTES_REQUEST``), and
    write them to ``ROUTES_FILE``; then end. Nothing that fails here reaches the service."""
    _wait_for(os.path.join(folder, ROUTES_REQUEST))
    try:
        found: dict[str, Any] = _routes[0].list_routes()
    except Exception as exc:  # the service's own code ran (a property, a urlconf)
        found = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]}
    path = os.path.join(folder, ROUTES_FILE.format(pid=os.getpid()))
    try:
        with open(path + ".tmp", "w") as out:
            out.write(json.dumps(found))
        os.replace(path + ".tmp", path)
    except (OSError, ValueError, TypeError):
        pass  # memgate waits for it a few seconds only


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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a free port
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    path = os.path.join(folder, PORT_FILE.format(pid=os.getpid()))
    with open(path + ".tmp", "w") as out:
        out.write(f"{port}\n")
    os.replace(path + ".tmp", path)
    tracker = _tracker(settings, port)
    tracker.__enter__()  # waits until memgate has connected
    _trackers[:] = [tracker]


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing):
    the service dies with memgate, even killed with SIGKILL, and a fork with the process
    that forked it. ``parent``, its parent's pid read before it started (memgate's; the
    forking process's, in the at-fork hook): one gone already is not waited for, and
    this process ends (read here only without it, which races with the parent's exit).
    A daemon started through a shell (no at-fork hook runs in it) is found by memgate
    by the mark in its environment (``$MEMGATE_SERVICE``), and killed with the service."""
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
_forking_process = [0]
"""The pid of the process that made the fork under way: the child's parent, read before
the fork (after it, a parent that exits at once, as in a double fork, is already gone)."""


def _before_fork() -> None:
    _forking_thread[0] = threading.current_thread() is threading.main_thread()
    _forking_process[0] = os.getpid()


def _after_fork(settings: dict[str, Any]) -> None:
    # The kernel ties the parent-death signal to the thread that forked: only a fork
    # of the main thread (a prefork server's worker) may have it, not a process pool
    # started from a request's thread, which would die when that thread ends.
    if _forking_thread[0]:
        die_with_parent(_forking_process[0] or None)
    _counts.collections, _counts.seconds = [0, 0, 0], 0.0
    if _samples[0] is not None:  # first: no thread below may write to the parent's file
        _samples[0].forked(bool(settings.get("follow_fork")))
    if _full[0] is not None:  # the parent's file: this process writes its own
        descriptor, _full[0] = _full[0], None
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _full[1] = "false"
    if _heap_fd[0] is not None:  # the parent's file too
        descriptor, _heap_fd[0] = _heap_fd[0], None
        with contextlib.suppress(OSError):
            os.close(descriptor)
    if settings.get("gc"):  # as _start: the full collections are the gc hook's too
        _daemon(_write_gc_forever, settings["gc"])
        _watch_full_collections(settings)
    # A process forked once the start's census was asked (a recycled worker, a pool's
    # process) takes none: its heap would be walked for nothing.
    asked = os.path.join(settings.get("folder", ""), CENSUS_REQUEST.format(label="start"))
    if settings.get("census") and not os.path.exists(asked):
        _daemon(_census_when_asked, settings["folder"])
    elif settings.get("census") and settings.get("capture") in COUNTING:
        _daemon(_point_at_end, settings["folder"])
    if settings.get("routes"):  # gunicorn's workers may import the app, not its master
        _daemon(_routes_when_asked, settings["routes"])
    if settings.get("capture") == "live" and settings.get("follow_fork"):
        _track_fork(settings)
    if settings.get("capture") in COUNTING and settings.get("follow_fork"):
        _daemon(_write_heap_forever, settings["folder"])
    if _samples[0] is not None and settings.get("follow_fork"):
        _daemon(_samples[0].forever)


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


def main() -> None:
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
    if settings.get("capture") == "sampled":
        samples = _beside("samples").Samples(settings["folder"], float(settings["rate"]))
        samples.start()  # memgate checked that the service's Python has the extension
        _samples[0] = samples
        _daemon(samples.forever)
    if settings.get("capture") in COUNTING:
        counters = _beside("heap").Heap(_samples[0].library if _samples[0] else None)
        counters.setup()  # before any thread reads it, or the collector's callback
        _heap[0] = counters
        _daemon(_write_heap_forever, settings["folder"])
    if settings.get("gc"):
        gc.callbacks.append(_counts.hook)
        _daemon(_write_gc_forever, settings["gc"])
        _watch_full_collections(settings)
    if settings.get("census"):
        _census[0] = _beside("census")
        _daemon(_census_when_asked, settings["folder"])
    if settings.get("routes"):
        _routes[0] = _beside("routes")
        _daemon(_routes_when_asked, settings["routes"])
    os.register_at_fork(before=_before_fork, after_in_child=lambda: _after_fork(settings))


if __name__ == "__main__":
    main()
