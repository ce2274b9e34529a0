"""Damaged memray captures through :class:`gate.recording.capture_file.Capture` and the
reading the runner does (``snapshots()``, then ``live_bytes_by_stack``).

Each case ends in :class:`UnreadableCapture` (an input error) with one line naming the
file, or in data that makes sense: never another exception or a hang. Truncations and a
damaged header are read in-process (memray reads them safely: a truncated capture reads
as the part before the cut, which the runner then refuses when it ends before the load).
Bytes overwritten inside the record stream can crash memray 1.20's reader itself
(SIGSEGV, or glibc aborting on a corrupted heap, also in ``memray stats``), so those are
read in child processes, where a crash is told apart from a Python exception or a hang.

``MEMGATE_FUZZ_EXAMPLES=2000`` runs more examples than CI does.
"""

from __future__ import annotations

import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gate.recording.capture_file import Capture, UnreadableCapture, tracking

FUZZ = settings(
    max_examples=int(os.environ.get("MEMGATE_FUZZ_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def read_all(path: Path) -> tuple[int, int]:
    """Read ``path`` as the runner does; check that what comes back makes sense; the
    number of snapshots and of stacks."""
    with Capture(path) as capture:
        snapshots = capture.snapshots()
        indexes = list(range(len(snapshots)))
        stacks = list(capture.live_bytes_by_stack(indexes))
    for snapshot in snapshots:
        assert math.isfinite(snapshot.t) and snapshot.heap >= 0 and snapshot.rss >= 0, snapshot
    for stack in stacks:
        assert len(stack.live) == len(indexes) and all(v >= 0 for v in stack.live), stack
        for frame in stack.stack:
            assert isinstance(frame.file, str) and isinstance(frame.line, int), frame
    return len(snapshots), len(stacks)


def _allocate() -> None:
    kept = [bytes(100) for _ in range(1000)]
    time.sleep(0.02)
    kept += [bytes(1000) for _ in range(100)]
    time.sleep(0.02)


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, int]]:
    """A small capture as memgate's tracker writes it (lz4-compressed at exit), and the
    same uncompressed, as a service killed before memray compressed it leaves it; each
    with its number of memory snapshots."""
    from memray import FileDestination, FileFormat, Tracker

    folder = tmp_path_factory.mktemp("captures")
    with tracking(folder / "compressed.bin"):
        _allocate()
    raw = FileDestination(folder / "raw.bin", overwrite=True, compress_on_exit=False)
    with Tracker(
        destination=raw,
        trace_python_allocators=True,
        memory_interval_ms=1,
        file_format=FileFormat.ALL_ALLOCATIONS,
    ):
        _allocate()
    return {
        name: ((folder / f"{name}.bin").read_bytes(), read_all(folder / f"{name}.bin")[0])
        for name in ("compressed", "raw")
    }


def assert_unreadable_or_sensible(path: Path, most_snapshots: int | None = None) -> None:
    try:
        snapshots, _ = read_all(path)
    except UnreadableCapture as exc:
        assert len(str(exc).splitlines()) == 1 and str(exc).startswith(f"{path}: "), exc
    else:
        assert most_snapshots is None or snapshots <= most_snapshots


def test_the_captures_fuzzed_below_are_readable(
    tmp_path: Path, captures: dict[str, tuple[bytes, int]]
) -> None:
    for name, (data, snapshots) in captures.items():
        (tmp_path / name).write_bytes(data)
        assert read_all(tmp_path / name)[0] == snapshots >= 20, name
    assert captures["raw"][0].startswith(b"memray\0")
    assert not captures["compressed"][0].startswith(b"memray\0")


@pytest.mark.parametrize("name", ["compressed", "raw"])
@FUZZ
@given(fraction=st.floats(0, 1, exclude_max=True))
@example(fraction=0.0)
@example(fraction=0.5)
def test_a_truncated_capture(
    tmp_path: Path, captures: dict[str, tuple[bytes, int]], name: str, fraction: float
) -> None:
    whole, snapshots = captures[name]
    path = tmp_path / "capture.bin"
    path.write_bytes(whole[: int(len(whole) * fraction)])
    assert_unreadable_or_sensible(path, snapshots)


@pytest.mark.parametrize("name", ["compressed", "raw"])
@FUZZ
@given(data=st.data())
def test_a_damaged_header(
    tmp_path: Path, captures: dict[str, tuple[bytes, int]], name: str, data: st.DataObject
) -> None:
    # The raw file starts with the magic "memray\0" and the format version (4 bytes);
    # the compressed one with lz4's frame header.
    damaged = bytearray(captures[name][0])
    for _ in range(data.draw(st.integers(1, 3))):
        damaged[data.draw(st.integers(0, 10))] = data.draw(st.integers(0, 255))
    path = tmp_path / "capture.bin"
    path.write_bytes(bytes(damaged))
    assert_unreadable_or_sensible(path)


@FUZZ
@given(content=st.binary(max_size=2000))
@example(content=b"memray\0")
@example(content=b"memray\0" + bytes(100))
@example(content=b'{"schema_version": 2}')
def test_bytes_that_are_no_capture(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "capture.bin"
    path.write_bytes(content)
    with pytest.raises(UnreadableCapture) as caught:
        read_all(path)
    assert len(str(caught.value).splitlines()) == 1
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no capture file (the service wrote none)"),
        (lambda p: p.mkdir(), "no capture file (the service wrote none)"),
        (lambda p: p.write_bytes(b""), "capture file is empty (the service was killed?)"),
        (lambda p: p.write_text("hello\n"), "not a readable memray capture"),
    ],
)
def test_no_capture_at_all(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "capture.bin"
    make(path)  # type: ignore[operator]
    with pytest.raises(UnreadableCapture, match="^" + re.escape(f"{path}: {message}")):
        read_all(path)


CHILD = """
import runpy, sys
from pathlib import Path
from gate.recording.capture_file import UnreadableCapture

read_all = runpy.run_path(sys.argv[1])["read_all"]
for number, name in enumerate(sys.argv[2:]):
    print("start", number, flush=True)
    try:
        read_all(Path(name))
        print("read", number, flush=True)
    except UnreadableCapture as exc:
        print("unreadable", number, len(str(exc).splitlines()), flush=True)
    except BaseException as exc:
        print("error", number, type(exc).__name__, str(exc).splitlines()[:1], flush=True)
"""

CRASHES = {-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS}


def read_in_children(files: list[Path]) -> None:
    """Read each damaged capture as the runner does, in child processes (memray may
    crash on one: the next child goes on after it): never a Python error, a hang, or
    memray's own error lines; at worst a crash of memray's, on under half of them."""
    outcomes: dict[int, str] = {}
    crashes = 0
    deadline = time.monotonic() + 60
    while len(outcomes) < len(files):
        rest = files[len(outcomes) :]
        child = subprocess.run(
            [sys.executable, "-c", CHILD, __file__, *map(str, rest)],
            capture_output=True,
            text=True,
            timeout=max(deadline - time.monotonic(), 1),
        )
        # memgate says in one line what it could not read; memray's own lines stay out.
        assert "Memray ERROR" not in child.stderr, child.stderr[-2000:]
        offset = len(outcomes)
        for line in child.stdout.splitlines():
            kind, number, *detail = line.split(" ", 2)
            outcomes[offset + int(number)] = f"{kind} {' '.join(detail)}".strip()
        if child.returncode != 0:
            # memray crashed on the last case it read: while reading it (the case was
            # started and not finished), or once it was read (glibc finds the heap
            # corrupted only when memray frees the reader). Note it and go on after it.
            assert child.returncode in CRASHES, child.stderr[-2000:]
            last = max(outcomes)
            crashed = f"memray crashed ({signal.Signals(-child.returncode).name})"
            if outcomes[last] != "start":
                assert outcomes[last] in ("read", "unreadable 1"), outcomes[last]
                crashed += f" after: {outcomes[last]}"
            outcomes[last] = crashed
            crashes += 1
    errors = {n: o for n, o in outcomes.items() if o.startswith(("error", "start"))}
    assert not errors, errors
    assert all(o in ("read", "unreadable 1") or o.startswith("memray") for o in outcomes.values())
    assert crashes < len(files) / 2, outcomes


def test_records_overwritten_never_end_in_a_python_error_or_a_hang(
    tmp_path: Path, captures: dict[str, tuple[bytes, int]]
) -> None:
    raw = captures["raw"][0]
    end = len(raw.rstrip(b"\0"))  # memray leaves the rest of its last block zeroed
    rng = random.Random(20261121)
    files = []
    for number in range(60):
        damaged = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(64, end)] = rng.randrange(256)
        files.append(tmp_path / f"{number}.bin")
        files[-1].write_bytes(bytes(damaged))
    read_in_children(files)


def test_a_header_field_out_of_range_is_unreadable_not_a_python_error(
    tmp_path: Path, captures: dict[str, tuple[bytes, int]]
) -> None:
    # Seen in the test above, once in a while (the capture differs per run): memray's
    # metadata, built from the header at each look, raised KeyError for an allocator id
    # of 189. Each of the header's first bytes (its fields, the command line, the
    # allocator's id after them) set to 189 in turn.
    raw = captures["raw"][0]
    files = []
    for offset in range(11, 11 + 400):
        damaged = bytearray(raw)
        damaged[offset] = 189
        files.append(tmp_path / f"{offset}.bin")
        files[-1].write_bytes(bytes(damaged))
    read_in_children(files)
