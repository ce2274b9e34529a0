"""The ``counters`` recorder: the agent's heap counters read back, and the agent's reading
of its own allocators (pymalloc's blocks and malloc's bytes in use) checked against
allocations of known sizes."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from gate.agent.memgate_agent import HEAP_INTERVAL_S
from gate.recording import recorder_for
from gate.recording.counters import CountersRecorder, counted_env
from gate.scenario import ProfileSpec
from gate.service.agent_files import heap_files, read_heap_counters
from tests.support.agent import load_beside


def counting_heap() -> Any:
    heap = load_beside("heap").Heap()
    heap.setup()
    return heap


def write_lines(path: Path, lines: list[object]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_the_agent_counts_what_python_allocates() -> None:
    """100,000 objects of 133 bytes (pymalloc's 144-byte blocks) and the list's 8 bytes
    a pointer: the heap grows by 152 bytes an object, to within 2%; freed, it returns."""
    heap = counting_heap()
    before = heap.read()
    assert before is not None and before > 0
    kept = [bytes(100) for _ in range(100_000)]
    grown = heap.read()
    assert grown is not None
    assert (grown - before) / len(kept) == pytest.approx(152, rel=0.02)
    del kept
    after = heap.read()
    assert after is not None and abs(after - before) < 100_000
    assert heap.rss() > grown


def test_without_mallinfo_the_heap_is_not_read_half() -> None:
    """Without glibc's counts (musl, macOS), blocks over 512 bytes would go uncounted:
    the heap is not read at all, and the run is refused, rather than read as flat."""
    heap = counting_heap()
    heap._mallinfo = None
    assert heap.read() is None and heap.fields() == ""


def test_a_large_allocation_is_counted_once_through_malloc() -> None:
    heap = counting_heap()
    before = heap.read()
    block = bytearray(8 * 2**20)
    grown = heap.read()
    assert before is not None and grown is not None
    assert grown - before == pytest.approx(len(block), rel=0.01)


def test_a_fork_reads_its_own_rss(tmp_path: Path) -> None:
    heap = counting_heap()
    assert heap.rss() > 0
    pid = os.fork()
    if pid == 0:  # the child grows its RSS by 64 MiB; the parent's file must not be read
        with contextlib.suppress(BaseException):
            before = heap.rss()
            grown = bytearray(64 * 2**20)
            grown[::4096] = b"x" * len(grown[::4096])
            (tmp_path / "child").write_text(str(heap.rss() - before))
        os._exit(0)
    os.waitpid(pid, 0)
    assert int((tmp_path / "child").read_text()) >= 60 * 2**20


def test_counters_are_read_with_the_full_collections_as_retained(tmp_path: Path) -> None:
    now = time.time()
    write_lines(
        tmp_path / "heap.100.5.jsonl",
        [{"t": now + n / 10, "heap": 1000 + n, "rss": 5000} for n in range(5)],
    )
    (tmp_path / "heap.100.5.jsonl").open("a").write('{"t": 1, "heap": 3')  # cut short
    write_lines(
        tmp_path / "full.100.jsonl",
        [
            {"t": now + 0.15, "pause": 0.01, "forced": True, "mark": 3000, "heap": 900, "rss": 1},
            {"t": now + 0.25, "pause": 0.01, "forced": False},  # none: not counted
        ],
    )
    snapshots = read_heap_counters(tmp_path / "heap.100.5.jsonl", tmp_path / "full.100.jsonl")
    assert [s.heap for s in snapshots] == [1000, 1001, 900, 1002, 1003, 1004]
    assert [s.retained for s in snapshots] == [False, False, True, False, False, False]


def test_a_reused_pid_is_read_from_its_newest_process(tmp_path: Path) -> None:
    for name in ("heap.7.100.jsonl", "heap.7.200.jsonl", "heap.8.50.jsonl", "heap.x.1.jsonl"):
        (tmp_path / name).write_text("")
    assert heap_files(tmp_path) == {
        7: tmp_path / "heap.7.200.jsonl",
        8: tmp_path / "heap.8.50.jsonl",
    }


def test_the_recorder_reads_the_main_process_first_and_sums_at_collections(
    tmp_path: Path,
) -> None:
    main, fork = os.getpid(), 2**22 + 1  # this process, and a pid no process has
    recorder = recorder_for(ProfileSpec(capture="counters"), tmp_path, tmp_path / "c", "service")
    assert isinstance(recorder, CountersRecorder)
    assert recorder.agent_settings()["capture"] == "counters"
    now = time.time()
    for pid, base in ((main, 1000), (fork, 5000)):
        write_lines(
            tmp_path / f"heap.{pid}.1.jsonl",
            [{"t": now + n, "heap": base + n, "rss": 1} for n in range(4)],
        )
        write_lines(
            tmp_path / f"full.{pid}.jsonl",
            [
                {"t": now + n + 0.5, "pause": 0.0, "forced": True, "heap": base, "rss": 1}
                for n in range(4)
            ],
        )
    recorder.connect(main, alive=lambda: True)
    assert recorder.forks() == [fork]
    with contextlib.ExitStack() as opened:
        recorded = recorder.open(main, opened, progress=False)
    assert [r.pid for r in recorded] == [main, fork]
    assert list(recorded[0].recording.live_bytes_by_stack([0, 1])) == []
    times, heap = recorder.heap_so_far(min_retained=3)
    assert len(times) == 4 and heap == [6000] * 4  # both retained heaps, summed
    times, heap = recorder.heap_so_far(min_retained=0)
    assert heap == [6000, 6002, 6004, 6006]
    assert recorder.records(fork) is None  # no such process: nothing to tell
    # The agent holds its file open (close-on-exec): a process that exec'd has not.
    assert recorder.records(main) is False and recorder.stream_ended()
    with open(tmp_path / f"heap.{main}.1.jsonl", "a"):
        assert recorder.records(main) is True and not recorder.stream_ended()
    # Counted from the measured phase's start only.
    assert recorder.retained_so_far(since=0.0) == 4
    assert recorder.retained_so_far(since=now + 2.0) == 2


def test_a_service_that_writes_no_counters_is_refused(tmp_path: Path, monkeypatch) -> None:
    from gate.errors import RunError
    from gate.recording import counters

    monkeypatch.setattr(counters, "CONNECT_S", 0.2)
    recorder = CountersRecorder(tmp_path, "service")
    with pytest.raises(RunError, match="wrote no heap counters"):
        recorder.connect(1234, alive=lambda: True)
    # A service that exited: its own exit is the reason given (by the caller), not this.
    assert recorder.connect(1234, alive=lambda: False) is None


def test_the_loads_end_waits_for_a_point_unless_a_census_follows(tmp_path: Path) -> None:
    """The main process's point after the load is waited for (a moment at most), unless
    a census follows: the agent writes that point itself, before the census."""

    (tmp_path / "heap.7.1.jsonl").write_text('{"t": 1.0, "heap": 100, "rss": 200}\n')
    waits = []
    for census in (False, True):
        recorder = CountersRecorder(tmp_path, "service", census)
        recorder._main = 7
        clock = time.monotonic()
        recorder.stop()  # no point comes: waited for at most 5 intervals, or not at all
        waits.append(time.monotonic() - clock)
    assert waits[0] >= 5 * HEAP_INTERVAL_S > 2 * waits[1]


@pytest.mark.parametrize("option", ["native", "flamegraph"])
def test_counters_refuse_what_needs_traces(option: str) -> None:
    with pytest.raises(ValueError, match=f"{option}: needs memray's traces"):
        ProfileSpec(capture="counters", **{option: True})


def test_a_counted_service_runs_without_glibcs_thread_caches_after_its_own_tunables() -> None:
    """A chunk in a thread's cache is in use to mallinfo2: a clean threaded service grew
    27-29 B/request counted with them."""
    assert counted_env({}) == {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}
    mine = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=7"}
    assert counted_env(mine) == {
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"
    }
