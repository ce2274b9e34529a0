"""The ``sampled`` recorder: the heap sampler's extension (``sampler/``) in a process of
its own (its hook stays for the process's life), the agent's samples file read back, and
each point's live bytes by stack."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from gate.errors import InputError
from gate.model import Frame, MemorySnapshot
from gate.recording import recorder_for, sampled
from gate.recording.sampled import SampledRecorder, SampledRecording
from gate.scenario import ProfileSpec
from gate.service.agent_files import SamplesReader, read_samples
from gate.service.interpreter import SAMPLER_VERSION, ServicePython, check_sampler

AGENT = Path(__file__).resolve().parents[2] / "gate" / "agent"

ESTIMATE = """
import json, sys, gc
sys.path.insert(0, sys.argv[1])
import memgate_sampler, heap
memgate_sampler.start(rate=4096, seed=7)
counted = heap.Heap(memgate_sampler.__file__)
counted.setup()
before = counted.read()
kept = []
def keep(n):
    for _ in range(n):
        kept.append(bytes(200))  # a 233-byte object
def churn(n):
    for i in range(n):
        garbage = [i] * 20
keep(50_000)
churn(200_000)
grown = counted.read()
def named():  # live first: every stack it names, and their frames, are read after
    live = memgate_sampler.live()
    stacks = dict(memgate_sampler.stacks_from(0))
    frames = {i: name for i, name, _, _ in memgate_sampler.frames_from(0)}
    return [(frames[stacks[s][0]] if stacks[s] else "", size) for s, size, _ in live]
by_function = {}
for name, size in named():
    by_function[name] = by_function.get(name, 0) + size
del kept[:]
gc.collect()
left = sum(size for name, size in named() if name == "keep")
print(json.dumps({"keep": by_function.get("keep", 0), "churn": by_function.get("churn", 0),
                  "counted": grown - before, "left": left, **memgate_sampler.stats()}))
"""


def test_the_sampler_estimates_a_lines_live_bytes_and_hides_none_of_the_heap() -> None:
    """50,000 objects of 233 bytes kept (11.65 MB, and the list's 0.4 MB) while 43 MB of
    lists come and go: the line that keeps them is estimated to within 8% (2,900 samples:
    a standard error of 2%), the churn's line at nearly nothing, and the heap's counters,
    read through the sampler while its hook is on, still count the kept bytes exactly;
    freed, nothing of the line is left."""
    done = subprocess.run(
        [sys.executable, "-c", ESTIMATE, str(AGENT)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["keep"] == pytest.approx(50_000 * 233 + 406_000, rel=0.08), found
    assert found["churn"] < 200_000, found
    assert found["counted"] == pytest.approx(50_000 * 240 + 406_000, rel=0.03), found
    assert found["left"] == 0 and found["sampled"] > 10_000, found


def test_the_sampler_is_started_once_and_refuses_a_rate_under_a_byte() -> None:
    code = (
        "import memgate_sampler as m\n"
        "for rate in (0.5, float('nan')):\n"
        "    try: m.start(rate=rate)\n"
        "    except ValueError as e: print('refused', e)\n"
        "m.start(rate=4096)\n"
        "try: m.start()\n"
        "except RuntimeError as e: print('again', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused rate: at least 1 byte") == 2
    assert "again the sampler is already started" in done.stdout


def write_samples(path: Path, lines: list[object]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"t": 9.0, "live": [[')
    return path


def test_samples_are_read_back_and_each_point_takes_the_last_line_at_or_before_it(
    tmp_path: Path,
) -> None:
    path = write_samples(
        tmp_path / "samples.7.1.jsonl",
        [
            {"frames": {"0": ["keep", "app.py", 5], "1": ["handle", "app.py", 9]}},
            {"stacks": {"0": [0, 1], "1": [1]}},
            {"t": 1.0, "live": [[0, 1000], [1, 50]]},
            {"frames": {"2": ["keep", "app.py", 5]}},  # another instruction, the same line
            {"stacks": {"2": [2, 1]}},
            {"t": 2.0, "live": [[0, 2000], [2, 500]]},
            "not a line of the agent's",
        ],
    )
    stacks, lines = read_samples(path)
    keep = (Frame("keep", "app.py", 5), Frame("handle", "app.py", 9))
    assert stacks[0] == keep and stacks[2] == keep and stacks[1] == (keep[1],)
    assert [t for t, _ in lines] == [1.0, 2.0]  # the line cut short is left out
    snapshots = [MemorySnapshot(t, 0, 0, False) for t in (0.5, 1.0, 1.5, 2.0)]
    read = SampledRecording(snapshots, SamplesReader(path))
    found = {s.stack: s.live for s in read.live_bytes_by_stack([-1, 0, 1, 2, 3])}
    # Before its first line, a point has nothing; stacks that differ only by their
    # instruction are one site.
    assert found == {keep: (0, 0, 1000, 1000, 2500), (keep[1],): (0, 0, 50, 50, 0)}
    assert read_samples(None) == ({}, [])


def test_a_file_read_as_it_grows_reads_as_the_whole_file(tmp_path: Path) -> None:
    lines = [
        {"frames": {"0": ["keep", "app.py", 5], "1": ["handle", "app.py", 9]}},
        {"stacks": {"0": [0, 1]}},
        {"t": 1.0, "live": [[0, 1000]]},
        {"stacks": {"1": [1]}},
        {"t": 2.0, "live": [[0, 2000], [1, 50]]},
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    path = tmp_path / "samples.7.1.jsonl"
    growing = SamplesReader(path)
    path.write_text(text[:120])  # the frames' line and part of the stacks' line
    growing.read_more()
    with path.open("a") as more:
        more.write(text[120:])
    growing.read_more()
    stacks, read = growing.sampled()
    whole_stacks, whole = read_samples(path)
    assert dict(stacks) == dict(whole_stacks) and len(dict(stacks)) == 2
    assert [(t, live.tolist()) for t, live in read] == [(t, live.tolist()) for t, live in whole]
    assert [t for t, _ in read] == [1.0, 2.0]


def test_the_recorder_reads_the_samples_while_the_service_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sampled, "READ_AHEAD_S", 0.01)
    (tmp_path / "heap.7.1.jsonl").write_text('{"t": 10.0, "heap": 100, "rss": 200}\n')
    path = write_samples(
        tmp_path / "samples.7.1.jsonl",
        [{"frames": {"0": ["keep", "app.py", 5]}}, {"stacks": {"0": [0]}}],
    )
    recorder = SampledRecorder(tmp_path, "service", True, 4096)
    recorder.connect(7, lambda: True)
    deadline = time.monotonic() + 10
    while recorder._reader(path)._offset == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder._reader(path)._offset > 0  # read ahead, the line cut short left
    assert recorder._reading is not None and recorder._reading.native_id is not None
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    niced = os.getpriority(os.PRIO_PROCESS, recorder._reading.native_id)
    assert niced == min(mine + sampled.READ_AHEAD_NICE, 19)  # with what the service leaves
    recorder.stop()  # the load ended (a census follows: no point waited for)
    recorder._reading.join(timeout=5)
    assert not recorder._reading.is_alive()
    with path.open("a") as more:  # the cut line ends, and another comes
        more.write('0, 300]]}\n{"t": 2.0, "live": [[0, 500]]}\n')
    (recorded,) = recorder.open(7, contextlib.ExitStack(), progress=False)
    found = list(recorded.recording.live_bytes_by_stack([0]))
    assert [(s.stack, s.live) for s in found] == [((Frame("keep", "app.py", 5),), (300,))]
    _, lines = recorder._reader(path).sampled()
    assert [(t, live.tolist()) for t, live in lines] == [(2.0, [[0, 500]]), (9.0, [[0, 300]])]


def test_the_sampled_recorder_asks_the_agent_to_sample_and_keys_its_runs_apart(
    tmp_path: Path,
) -> None:
    recorder = recorder_for(
        ProfileSpec(capture="sampled", sample_bytes=1024), tmp_path, tmp_path / "c", "service"
    )
    assert isinstance(recorder, SampledRecorder)
    assert recorder.agent_settings()["capture"] == "sampled"
    assert recorder.agent_settings()["rate"] == 1024
    assert (recorder.mode, recorder.env_suffix) == ("sampled", "sampled")
    (tmp_path / "samples.7.1.jsonl").write_text("")
    recorder.clear()
    assert not (tmp_path / "samples.7.1.jsonl").exists()


def test_sampling_without_the_extension_in_the_services_python_is_refused_in_one_line() -> None:
    python = ServicePython("/venv/bin/python", "3.11.7", "1.20.0", ())
    with pytest.raises(InputError, match="cannot import memgate_sampler") as refused:
        check_sampler(python, "service")
    assert "-m pip install" in str(refused.value) and "\n" not in str(refused.value)
    old = ServicePython("/venv/bin/python", "3.11.7", "1.20.0", (), sampler="0.1.0")
    reads = re.escape(SAMPLER_VERSION)
    with pytest.raises(InputError, match=rf"has memgate-sampler 0\.1\.0 and memgate reads {reads}"):
        check_sampler(old, "service")
    check_sampler(dataclasses.replace(old, sampler=SAMPLER_VERSION), "service")


def test_memgate_reads_the_version_of_the_sampler_beside_it() -> None:
    pyproject = tomllib.loads((AGENT.parents[1] / "sampler" / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == SAMPLER_VERSION


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (
            {"capture": "sampled", "native": True},
            'native: needs memray\'s traces; capture = "sampled"',
        ),
        ({"capture": "sampled", "sample_bytes": 8}, "greater than or equal to 64"),
    ],
)
def test_sampling_settings_that_cannot_hold_are_refused(
    settings: dict[str, object], said: str
) -> None:
    with pytest.raises(ValueError, match=said):
        ProfileSpec(**settings)  # type: ignore[arg-type]


WRITE = """
import os, sys, time
import memgate_sampler
memgate_sampler.start(rate=256, seed=3)
space = {}
code = "def keep(n):\\n    return [bytes(100) for _ in range(n)]\\n"
exec(compile(code, sys.argv[2], "exec"), space)
kept = space["keep"](5000)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
memgate_sampler.write(fd, 1.5)
more = space["keep"](5000)
memgate_sampler.write(fd, 2.5)  # only what is new, then what is live
memgate_sampler.rewrite()
memgate_sampler.write(fd, 3.5)  # all again, as a forked process's new file has it
"""


def test_the_extension_writes_lines_the_recorder_reads_with_any_file_name(tmp_path: Path) -> None:
    """The lines are made in C (no allocation): names are escaped as JSON, a write has
    only the frames and stacks new since the last, and ``rewrite`` starts over."""
    path = tmp_path / "samples.1.1.jsonl"
    odd = 'we"ird\\\nname\x01.py'
    done = subprocess.run(
        [sys.executable, "-c", WRITE, str(path), odd], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [next(iter(line)) for line in lines][:3] == ["frames", "stacks", "t"]
    assert sum("frames" in line for line in lines) == 3  # the first, maybe new ones, all again
    stacks, points = read_samples(path)
    assert [t for t, _ in points] == [1.5, 2.5, 3.5]
    keep = {s for s, frames in stacks.items() if frames and frames[0].file == odd}
    assert keep, stacks
    held = [sum(b for s, b in live.tolist() if s in keep) for _, live in points]
    # 5,000 then 10,000 objects of 133 bytes (and the lists' pointers)
    assert held[0] == pytest.approx(5000 * 141, rel=0.15), held
    assert held[1] == pytest.approx(10000 * 141, rel=0.15) and held[2] == held[1], held


DEAD_CODE = """
import gc, os, sys
import memgate_sampler
memgate_sampler.start(rate=64, seed=11)
def made(i):
    space = {}
    exec(compile(f"def handler_{i}():\\n    return [bytes(100) for _ in range(20)]\\n",
                 f"generated_{i}.py", "exec"), space)
    return space[f"handler_{i}"]
for i in range(50):  # warm
    made(i)()
gc.collect()
before = sys.getallocatedblocks()
for i in range(50, 2050):
    made(i)()  # sampled, then the code object dies with the function
gc.collect()
grown = sys.getallocatedblocks() - before
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
memgate_sampler.write(fd, 1.0)
print(grown)
"""


def test_code_objects_made_as_the_service_runs_are_not_kept_alive_and_keep_their_names(
    tmp_path: Path,
) -> None:
    """2,000 functions compiled and dropped, each sampled: none stays alive because it
    was sampled (the sampler held a reference to each: a leak the gate then measured,
    38 B/request for a namedtuple a request), and their frames still have their names."""
    path = tmp_path / "samples.1.1.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", DEAD_CODE, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 2000, done.stdout  # a kept code object is ~10 blocks
    frames = {
        (name, file)
        for line in path.read_text().splitlines()
        for name, file, _ in json.loads(line).get("frames", {}).values()
    }
    named = {name for name, file in frames if file.startswith("generated_")}
    assert len(named) > 1500, sorted(named)[:5]


def test_a_stack_naming_a_frame_a_damaged_line_lost_is_left_out_alone(tmp_path: Path) -> None:
    path = write_samples(
        tmp_path / "samples.7.1.jsonl",
        [
            {"frames": {"0": ["keep", "app.py", 5]}},
            {"stacks": {"0": [0], "1": [7]}},  # frame 7 was on a line cut short
            {"t": 1.0, "live": [[0, 100], [1, 50]]},
        ],
    )
    stacks, lines = read_samples(path)
    assert stacks == {0: (Frame("keep", "app.py", 5),)}
    assert [(t, live.tolist()) for t, live in lines] == [(1.0, [[0, 100], [1, 50]])]


MANY_LINES = """
import memgate_sampler
memgate_sampler.start(rate=64, seed=13)
def handle(i):
    a = [i] * 10
    b = {"i": i, "a": a}
    c = str(i) * 3
    return a, b, c
for i in range(20000):
    handle(i)
print(memgate_sampler.stats()["frames"])
"""


def test_a_code_objects_frames_are_interned_once_each_however_often_sampled() -> None:
    """A function whose several lines are sampled 20,000 times: a frame each, not a new
    one at each sample (setting a code object's slot again let go of its frames, and the
    demo's frames went from 3,169 to 92,304, at a tenth of its speed)."""
    done = subprocess.run(
        [sys.executable, "-c", MANY_LINES], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 100, done.stdout


@pytest.mark.parametrize(
    ("line", "read"),
    [
        (b'{"t": 1.5, "live": [[1, 2], [3, 40]]}', [[1, 2], [3, 40]]),
        (b'{"t": 1.5, "live": []}', []),
        (b'{"t": 1.5, "live": [[1, 2],  [3, 40]]}', [[1, 2], [3, 40]]),  # JSON, not C's
        (b'{"t": 1.5, "live": [[1, 2], [3]]}', None),
        (b'{"t": 1.5, "live": [[1, 2], [3 4]]}', None),
        (b'{"t": 1.5, "live": [[1, -], [3, 4]]}', None),
        (b'{"t": 1.5, "live": [[1, 2], [3, 4]', None),
        (b'{"t": 1.5, "live": [[1, 2], [3, "4"]]}', None),
        (b'{"t": 1.5, "live": [[1, 2][3, 4]]}', None),
        (b'{"t": 1.5, "live": [[1, 2, 3], [4]]}', None),
        (b'{"t": 1.5, "live": [[1, 99999999999999999999]]}', None),
        (b'{"t": 1.5, "live": [[1, 2], [3, -4]]}', [[1, 2], [3, -4]]),
    ],
)
def test_a_live_line_is_read_as_json_reads_it_or_left_out(
    tmp_path: Path, line: bytes, read: list[list[int]] | None
) -> None:
    """The extension's own lines are read by numpy's text parser, fast: a line that is
    not quite that form is read as JSON, and one that is not the live set is left out."""
    path = tmp_path / "samples.7.1.jsonl"
    path.write_bytes(line + b"\n")
    _, lines = read_samples(path)
    assert [live.tolist() for _, live in lines] == ([] if read is None else [read])


@pytest.mark.parametrize(
    ("line", "read"),
    [
        (b'{"stacks": {"0": [0, 1], "1": [1]}}', {0: ("a", "b"), 1: ("b",)}),
        (b'{"stacks": {"0": []}}', {0: ()}),
        (b'{"stacks": {"0": [0,1], "1": [1]}}', {0: ("a", "b"), 1: ("b",)}),  # JSON, not C's
        (b'{"stacks": {"0": [0, 1] "1": [1]}}', {}),
        (b'{"stacks": {"0": [0, 1], "1": [1], }}', {}),
        (b'{"stacks": {"0": [0,, 1]}}', {}),
        (b'{"stacks": {"0": [0, 1]x}}', {}),
        (b'{"stacks": {"0": [0, 1], "1": [1', {}),
        (b'{"stacks": {"0": [0, "1"]}}', {}),
        (b'{"stacks": {"0": [0, 1]]["1": [1]}}', {}),
        (b'{"stacks": {"0": [0, 1]99"1": [1]}}', {}),
        (b'{"stacks": {"0": [01]}}', {}),
    ],
)
def test_a_stacks_line_is_read_as_json_reads_it_or_left_out(
    tmp_path: Path, line: bytes, read: dict[int, tuple[str, ...]]
) -> None:
    """The extension's own lines of new stacks are kept as text and read when a stack
    is asked for: a line not quite of that form is read as JSON, or left out."""
    path = tmp_path / "samples.7.1.jsonl"
    path.write_bytes(
        b'{"frames": {"0": ["a", "app.py", 1], "1": ["b", "app.py", 2]}}\n' + line + b"\n"
    )
    stacks, _ = read_samples(path)
    assert {k: tuple(f.function for f in v) for k, v in stacks.items()} == read
