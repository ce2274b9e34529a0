"""memray's live streams through :class:`gate.recording.live.LiveCapture`, from real tracked
processes: a child Python runs a ``memray.Tracker`` on a socket, as memgate's agent
starts it, and keeps a known pattern alive (``KEPT``: 1,033 bytes every 10 ms, one
``bytes(1000)`` each) while it allocates and frees another (``FREED``).

A fork announces its tracker in ``FOLDER/live.PID.port`` as the agent does. Each case
ends in snapshots that make sense or in a one-line :class:`RunError`: never another
exception or a hang.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.errors import RunError
from gate.recording.live import LiveCapture, LiveProcess
from gate.tcp_table import backlogs

TRACKED = '''\
import os, socket, sys, threading, time
from pathlib import Path

import memray


def tracker(port):
    destination = memray.SocketDestination(server_port=port, address="127.0.0.1")
    native = os.environ.get("TRACKED_NATIVE") == "1"
    return memray.Tracker(
        destination=destination, trace_python_allocators=True, native_traces=native
    )


def _memgate_marker(size):  # as the agent's
    return b"\\0" * size


def allocate(kept, done):
    for i in range(len(kept)):
        kept[i] = bytes(1000)  # KEPT
        churn = [bytes(2000) for _ in range(10)]  # FREED
        del churn
        time.sleep(0.01)
    done.write_text("done")


def churn_then_done(folder):
    """Allocate a while, as a service does (its records go out in blocks of 4 KiB), then
    say it is done."""
    for _ in range(100):
        churn = [bytes(100) for _ in range(20)]
        del churn
        time.sleep(0.005)
    (folder / "done").write_text("done")


def idle():
    """Allocate and free until the test closes standard input, as a running service
    does: memray's tracker sends its records in blocks of 4 KiB, so the last records
    of a process that stops allocating stay unsent until more follow."""
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    while not closed.is_set():
        churn = [bytes(100) for _ in range(20)]
        del churn
        time.sleep(0.005)


def many(n):
    source = "def allocate(kept):\\n" + "".join(
        f"    kept[{i}] = bytes({100 + i % 50})\\n" for i in range(n)
    )
    space = {}
    exec(compile(source, str(folder / "generated.py"), "exec"), space)
    kept = [None] * n
    space["allocate"](kept)
    return kept


def announce(folder):
    """Pick a free port and write it where memgate looks, renamed into place."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temporary = folder / f".live.{os.getpid()}.port.tmp"
    temporary.write_text(f"{port}\\n")
    os.replace(temporary, folder / f"live.{os.getpid()}.port")
    return port


port, n, folder, mode = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
kept = [None] * n
with tracker(port):
    if mode == "fork" and (child := os.fork()) == 0:
        # The parent's tracker put ThreadNameInterceptor descriptors on threading.Thread
        # (_name, _ident); a new Tracker asserts they are not there.
        for attr in ("_name", "_ident"):
            if attr in threading.Thread.__dict__:
                delattr(threading.Thread, attr)
        with tracker(announce(folder)):
            allocate(kept, folder / f"done.{os.getpid()}")
            idle()
        os._exit(0)
    if mode == "many":
        kept = many(n)
        (folder / "done").write_text("done")
    elif mode == "collect":  # as the agent tells of a full collection that freed kept
        allocate(kept, folder / "allocated")
        full = folder / f"full.{os.getpid()}.jsonl"
        with open(full, "a") as out:
            out.write('{"soon": true}\\n')
            out.flush()
            time.sleep(0.3)
            del kept[:]
            out.write('{"t": %f, "pause": 0.001, "forced": true}\\n' % time.time())
        churn_then_done(folder)
    elif mode == "marked":  # a collection, its marker allocated 0.5 s after its line
        decoy = bytes(3000)  # alive all along, of the marker's size: not the marker
        allocate(kept, folder / "allocated")
        with open(folder / f"full.{os.getpid()}.jsonl", "a") as out:
            del kept[:]
            out.write('{"t": %f, "pause": 0.001, "forced": true, "mark": 3033}\\n' % time.time())
            out.flush()
            time.sleep(0.5)
            (folder / "marked").write_text(str(time.time()))
            marker = _memgate_marker(3000)
        churn_then_done(folder)
    elif mode == "superseded":  # a collection whose marker never comes, then the next's
        allocate(kept, folder / "allocated")
        with open(folder / f"full.{os.getpid()}.jsonl", "a") as out:
            out.write('{"t": %f, "pause": 0.001, "forced": true, "mark": 3033}\\n' % time.time())
            out.flush()
            time.sleep(0.3)
            out.write('{"t": %f, "pause": 0.001, "forced": true, "mark": 3034}\\n' % time.time())
            out.flush()
            marker = _memgate_marker(3001)
        churn_then_done(folder)
    else:
        allocate(kept, folder / "done")
    if mode != "exit":
        idle()
if mode == "fork":
    os.waitpid(child, 0)
'''

KEPT = next(n for n, line in enumerate(TRACKED.splitlines(), 1) if "# KEPT" in line)
FREED = next(n for n, line in enumerate(TRACKED.splitlines(), 1) if "# FREED" in line)
ONE = 1033  # sys.getsizeof(bytes(1000))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(path: Path, timeout: float = 20.0, port: int | None = None) -> None:
    """Wait for ``path``, then a little for its writer's last records to reach us (and,
    given the stream's ``port``, until nothing waits unread in its socket: a busy
    machine's reader lags; seen with native traces, whose records are larger)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    time.sleep(0.2)
    while port is not None and backlogs().get(port, 0) and time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def tracked(
    folder: Path, n: int, mode: str = "wait", native: bool = False, **options: Any
) -> Iterator[tuple[subprocess.Popen[bytes], LiveCapture]]:
    """A child tracked on a socket, allocating ``n`` times, and a LiveCapture of it
    (``native``: with native traces)."""
    script = folder / "tracked.py"
    script.write_text(TRACKED)
    port = free_port()
    command = [sys.executable, str(script), str(port), str(n), str(folder), mode]
    env = {**os.environ, "TRACKED_NATIVE": "1" if native else "0"}
    child = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
    live = LiveCapture(port, folder, connect_timeout_s=10.0, **options)
    try:
        live.connect()
        yield child, live
    finally:
        live.stop()
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def live_at(process: LiveProcess, line: int, file: str = "tracked.py") -> list[int]:
    """At each of the process's snapshots, the live bytes of the stacks whose innermost
    frame is ``file:line``."""
    indexes = list(range(len(process.snapshots())))
    total = [0] * len(indexes)
    for s in process.live_bytes_by_stack(indexes):
        if s.stack and s.stack[0].line == line and s.stack[0].file.endswith(file):
            total = [a + b for a, b in zip(total, s.live, strict=True)]
    return total


def test_the_heap_after_a_full_collection_is_read_apart_and_has_its_frees(
    tmp_path: Path,
) -> None:
    n = 100
    with tracked(tmp_path, n, mode="collect", interval_s=0.05) as (child, live):
        wait_for(tmp_path / "done")
        live.stop()
        (main,) = live.processes()
    snapshots = main.snapshots()
    (retained,) = [i for i, s in enumerate(snapshots) if s.retained]
    (line,) = [
        x for x in (tmp_path / f"full.{child.pid}.jsonl").read_text().splitlines() if '"t"' in x
    ]
    ended = float(line.split('"t": ')[1].split(",")[0])
    assert snapshots[retained].t >= ended + 0.05  # it waited for the frees to arrive
    kept = live_at(main, KEPT)
    assert kept[retained - 1] > 0 and kept[retained] == 0
    # No other poll started between "soon" and the collection's own.
    before = [s.t for s in snapshots[:retained] if not s.retained]
    assert ended - before[-1] >= 0.2, (ended, before[-3:])


def test_the_heap_after_a_full_collection_is_read_once_the_agents_marker_shows(
    tmp_path: Path,
) -> None:
    with tracked(tmp_path, 100, mode="marked", interval_s=0.05) as (_, live):
        wait_for(tmp_path / "done")
        live.stop()
        (main,) = live.processes()
    snapshots = main.snapshots()
    (retained,) = [s for s in snapshots if s.retained]
    # Not at the first poll after the line: another stack's bytes matched the size.
    assert retained.t >= float((tmp_path / "marked").read_text())
    assert live.stats.retained_missed == 0


def test_a_collection_whose_marker_never_came_before_the_next_is_counted_unread(
    tmp_path: Path,
) -> None:
    with tracked(tmp_path, 20, mode="superseded", interval_s=0.05) as (_, live):
        wait_for(tmp_path / "done")
        live.stop()
        (main,) = live.processes()
    assert len([s for s in main.snapshots() if s.retained]) == 1  # the second's
    assert live.stats.retained_missed == 1


def test_a_tracked_process_is_read_as_it_runs(tmp_path: Path) -> None:
    n = 100
    with tracked(tmp_path, n, interval_s=0.05) as (child, live):
        wait_for(tmp_path / "done")
        live.stop()
        (main,) = live.processes()
    snapshots = main.snapshots()
    assert main.pid == child.pid
    assert len(snapshots) >= 10
    times = [s.t for s in snapshots]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert abs(times[-1] - time.time()) < 5 and all(s.rss == 0 for s in snapshots)
    assert snapshots[-1].heap > snapshots[0].heap and snapshots[-1].heap >= n * ONE

    kept = live_at(main, KEPT)
    assert kept == sorted(kept) and kept[0] < kept[-1]
    assert all(v % ONE == 0 for v in kept)  # whole bytes objects only
    assert kept[-1] == n * ONE  # the last poll was taken at stop(), after the last one
    freed = live_at(main, FREED)
    assert max(freed) <= 10 * 2033 + 256 and freed[-1] <= 256  # what the code itself keeps

    stats = live.stats
    assert stats.polls >= len(snapshots) and stats.problems == ()
    assert 0 < stats.median_poll_s <= stats.max_poll_s < 1
    assert stats.last_poll_stacks > 0


def test_stacks_are_merged_frames_shared_and_negative_indexes_zero(tmp_path: Path) -> None:
    with tracked(tmp_path, 20, interval_s=0.05) as (_, live):
        wait_for(tmp_path / "done")
        live.stop()
        (main,) = live.processes()
    last = len(main.snapshots()) - 1
    stacks = list(main.live_bytes_by_stack([-1, last, 0]))
    assert len({s.stack for s in stacks}) == len(stacks)  # one entry per Python stack
    assert all(s.live[0] == 0 for s in stacks)
    kept = [s for s in stacks if s.stack and s.stack[0].line == KEPT]
    freed = [s for s in stacks if s.stack and s.stack[0].line == FREED]
    assert len(kept) == 1 and kept[0].live[1] == 20 * ONE
    # Both were called from the same line of the module: one Frame object for it.
    assert kept[0].stack[1] is freed[0].stack[1]


def test_with_native_traces_each_python_stack_is_one_entry_with_its_native_frames(
    tmp_path: Path,
) -> None:
    with tracked(tmp_path, 20, native=True, interval_s=0.05) as (_, live):
        wait_for(tmp_path / "done", port=live.port)
        live.stop()
        (main,) = live.processes()
    last = len(main.snapshots()) - 1
    stacks = list(main.live_bytes_by_stack([0, last]))
    assert len({s.stack for s in stacks}) == len(stacks)
    (kept,) = [s for s in stacks if s.stack and s.stack[0].line == KEPT]
    assert kept.live[1] == 20 * ONE  # every native path of the line summed
    # bytes(1000) is allocated by the interpreter's C code, called by the KEPT line.
    assert any("bytes" in f.function.lower() for f in kept.native[:3]), kept.native
    assert not any(f.file.endswith("tracked.py") for f in kept.native)
    without = list(main.live_bytes_by_stack([last]))
    assert sum(s.live[0] for s in without) == sum(s.live[1] for s in stacks)


def test_points_are_capped_and_their_spacing_doubles(tmp_path: Path) -> None:
    with tracked(tmp_path, 100, interval_s=0.02, max_points=8) as (_, live):
        wait_for(tmp_path / "done")
        started = time.time()
        live.stop()
        (main,) = live.processes()
    times = [s.t for s in main.snapshots()]
    assert len(times) <= 8
    assert main.interval_s >= 0.02 * 4  # thinned at least twice in about a second
    assert live.stats.polls > 2 * len(times)
    gaps = [b - a for a, b in itertools.pairwise(times[:-1])]  # stop()'s poll aside
    assert all(0.5 * main.interval_s < gap < 2.5 * main.interval_s for gap in gaps), gaps
    assert times[-1] >= started  # stop()'s poll is kept


def test_a_fork_announced_in_a_port_file_is_read(tmp_path: Path) -> None:
    n = 60
    (tmp_path / "live.999999.port").write_text("not a port")
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()
    (tmp_path / f"live.{ended.pid}.port").write_text(f"{free_port()}\n")
    with tracked(tmp_path, n, mode="fork", interval_s=0.05) as (child, live):
        wait_for(tmp_path / "done")
        done = []
        deadline = time.monotonic() + 20
        while not (done := list(tmp_path.glob("done.*"))):
            assert time.monotonic() < deadline, "the fork never finished"
            time.sleep(0.02)
        live.stop()
        main, fork = live.processes()
    assert main.pid == child.pid and fork.pid == int(done[0].suffix[1:]) != child.pid
    assert live_at(main, KEPT)[-1] == n * ONE
    kept = live_at(fork, KEPT)
    assert kept == sorted(kept) and kept[-1] == n * ONE
    assert fork.snapshots()[0].t >= main.snapshots()[0].t
    problems = live.stats.problems
    assert len(problems) == 2, problems
    assert "live.999999.port: not a port number" in problems[0]
    assert f"process {ended.pid} ended before it listened" in problems[1]


def test_a_process_that_exits_leaves_its_snapshots_up_to_its_end(tmp_path: Path) -> None:
    n = 30
    with tracked(tmp_path, n, mode="exit", interval_s=0.05) as (child, live):
        child.wait(timeout=20)
        exited = time.time()
        time.sleep(0.5)
        live.stop()
        (main,) = live.processes()
    snapshots = main.snapshots()
    assert main.ended
    assert snapshots[-1].t < exited + 0.3  # no polls after the stream ended
    assert live_at(main, KEPT)[-1] == n * ONE
    assert live.stats.problems == ()


def test_thousands_of_stacks(tmp_path: Path) -> None:
    n = 3000  # one stack per line; more stack ids than the first table holds
    with tracked(tmp_path, n, mode="many", interval_s=0.05) as (_, live):
        wait_for(tmp_path / "done")
        live.stop()
        (main,) = live.processes()
    last = len(main.snapshots()) - 1
    generated = {
        s.stack[0].line: s.live[0]
        for s in main.live_bytes_by_stack([last])
        if s.stack and s.stack[0].file.endswith("generated.py") and s.stack[0].line > 1
    }  # line 1 made the function
    assert len(generated) == n
    assert all(live == 33 + 100 + (line - 2) % 50 for line, live in generated.items())
    assert live.stats.last_poll_stacks > n


def test_a_port_nobody_listens_on_is_one_line_within_the_timeout(tmp_path: Path) -> None:
    port = free_port()
    live = LiveCapture(port, tmp_path, connect_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(RunError) as error:
        live.connect()
    assert time.monotonic() - started < 2
    assert str(error.value) == f"no memray tracker listened on 127.0.0.1:{port} within 0.5 s"
    live.stop()
    live.stop()
    assert live.processes() == []


GARBAGE = """\
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
print(server.getsockname()[1], flush=True)
connection, _ = server.accept()
connection.sendall(bytes.fromhex(sys.argv[1]))
connection.close()
"""


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", ("does not look like a binary generated by memray",)),
        # Cut after the magic: memray since 1.14 says so; 1.13 takes it for another version.
        (b"memray\0", ("Failed to read input file header", "incompatible with this version")),
        (b"memray\0\xff\x00\x00\x00" + bytes(64), ("incompatible with this version of memray",)),
    ],
)
def test_a_stream_that_is_not_memrays_is_one_line(
    tmp_path: Path, payload: bytes, reason: tuple[str, ...]
) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", GARBAGE, payload.hex()], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    try:
        with LiveCapture(port, tmp_path, connect_timeout_s=5) as live, pytest.raises(RunError) as e:
            live.connect()
        assert str(e.value).startswith(f"127.0.0.1:{port}: not a memray stream: ")
        assert any(said in str(e.value) for said in reason) and "\n" not in str(e.value)
    finally:
        server.wait(timeout=10)
