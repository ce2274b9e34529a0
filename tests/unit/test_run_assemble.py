"""Building one service's result from its recordings (``gate.run.assemble``), with a fake
recorder handed in: the builder knows no mode, only the recorder's ``Timing``."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gate.errors import RunError
from gate.load import LoadOutcome
from gate.model import Frame, LoadSample, MemorySnapshot
from gate.recording import Recorded, Timing
from gate.recording.capture_file import StackLiveBytes
from gate.run.assemble import build_result
from gate.scenario import load_scenario
from gate.service.interpreter import AGENT, ServicePython
from gate.shapes import Shape
from tests.support import DEMO_SCENARIO
from tests.support.recorders import QuietRecorder

BASE = 4_000_000
"""The heap the fake service holds before the load."""
RATE = 200
"""Requests a second the fake load serves."""
LEAKING = (Frame("handle", "/srv/app.py", 12), Frame("dispatch", "/srv/app.py", 30))
STEADY = (Frame("startup", "/srv/app.py", 3),)
AGENT_STACK = (Frame("_census", str(AGENT), 1),)
STAMPED = Timing()
PYTHON = ServicePython("python3", "3.11.7", "1.20.0", ("/usr/lib/python3.11",))


class Recording:
    """A process that keeps ``leak`` bytes per request at ``LEAKING`` and holds ``agent``
    bytes of memgate's agent, read every 0.1 s."""

    def __init__(self, start: float, seconds: float, leak: int, agent: int = 0) -> None:
        self.leak, self.agent = leak, agent
        self._snapshots = [
            MemorySnapshot(t=start + i / 10, rss=3 * BASE, heap=self._heap(i / 10))
            for i in range(int(seconds * 10) + 1)
        ]

    def _heap(self, t: float) -> int:
        return BASE + self.agent + int(self.leak * RATE * max(t, 0.0))

    def snapshots(self) -> list[MemorySnapshot]:
        return self._snapshots

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        heaps = [self._snapshots[i].heap if i >= 0 else 0 for i in indexes]
        yield StackLiveBytes(STEADY, tuple(BASE if i >= 0 else 0 for i in indexes))
        yield StackLiveBytes(AGENT_STACK, tuple(self.agent if i >= 0 else 0 for i in indexes))
        grown = [
            h - BASE - self.agent if i >= 0 else 0 for h, i in zip(heaps, indexes, strict=True)
        ]
        yield StackLiveBytes(LEAKING, tuple(grown))


class FakeRecorder(QuietRecorder):
    """A recorder handing out ``recordings`` as they are, its snapshots stamped as
    ``timing`` says."""

    def __init__(self, recordings: list[Recorded], timing: Timing = STAMPED) -> None:
        self.recordings, self.timing = recordings, timing

    def open(self, main_pid: int, opened: contextlib.ExitStack, progress: bool) -> list[Recorded]:
        return self.recordings


@dataclasses.dataclass
class FakeService:
    """What the builder asks of :class:`gate.service.process.ServiceProcess`."""

    recorder: FakeRecorder
    folder: Path
    pid: int = 4242
    who: str = "service"
    libraries: tuple[str, ...] = ()
    python: ServicePython = PYTHON

    def samples(self) -> list[object]:
        return []

    @property
    def census_folder(self) -> Path:
        return self.folder

    @property
    def gc_prefix(self) -> Path:
        return self.folder / "gc"

    @property
    def log_path(self) -> Path:
        return self.folder / "service.log"


def outcome(start: float = 1000.0, seconds: float = 20.0) -> LoadOutcome:
    """A load of ``seconds`` at ``RATE`` requests a second, the first 2 s its warm-up."""
    return LoadOutcome(
        started_at=start,
        warmup_done_at=start + 2,
        ended_at=start + seconds,
        samples=tuple(
            LoadSample(start + t / 10, RATE * t // 10, 0) for t in range(int(seconds * 10) + 1)
        ),
        stop_reason="requests",
        endpoints=(),
    )


def build(tmp_path: Path, recorder: FakeRecorder, load: LoadOutcome | None = None):
    member = load_scenario(DEMO_SCENARIO).members()[0]
    service = FakeService(recorder, tmp_path)
    started = datetime.datetime(2026, 12, 6, tzinfo=datetime.UTC)
    return build_result(member, service, load or outcome(), started, False)  # type: ignore[arg-type]


def test_a_leak_recorded_by_any_recorder_is_a_leak_at_its_line(tmp_path: Path) -> None:
    recorder = FakeRecorder([Recorded(4242, "", Recording(999.5, 21, leak=64))])
    result = build(tmp_path, recorder)
    assert result.capture.mode == "fake" and result.capture.forks == 0
    assert result.analysis.shape is Shape.LEAK
    growth = result.analysis.heap.trend
    assert growth.low <= 64 <= growth.high and growth.high - growth.low < 2
    top = result.sites[0]
    assert (top.frame.file, top.frame.line) == ("/srv/app.py", 12)
    assert top.trend.low <= 64 <= top.trend.high
    assert result.load.measured_requests == RATE * 18


def test_read_live_the_agents_bytes_are_no_part_of_the_heap(tmp_path: Path) -> None:
    agent = 300_000
    read_live = Timing(after_end_s=5.0, late_s=1.0, stamped_in_service=False)
    recorder = FakeRecorder([Recorded(4242, "", Recording(999.5, 21, 0, agent))], read_live)
    result = build(tmp_path, recorder)
    assert {p.heap for p in result.curve.points} == {BASE}
    assert result.analysis.shape is Shape.FLAT
    # Stamped in the service (a capture file), the agent's bytes are left to the windows
    # around its censuses: here there are none, and the heap keeps them.
    stamped = FakeRecorder([Recorded(4242, "capture.bin", Recording(999.5, 21, 0, agent))])
    assert {p.heap for p in build(tmp_path, stamped).curve.points} == {BASE + agent}


def test_a_fork_is_summed_with_the_main_process(tmp_path: Path) -> None:
    main = Recorded(4242, "", Recording(999.5, 21, leak=0))
    fork = Recorded(4243, "", Recording(999.6, 20.9, leak=32))
    result = build(tmp_path, FakeRecorder([main, fork]))
    assert result.capture.forks == 1
    assert [c.pid for c in result.process_curves] == [4242, 4243]
    end = result.curve.points[-1]
    assert end.heap == sum(c.heap[-1] for c in result.process_curves)
    assert result.analysis.heap.trend.low <= 32 <= result.analysis.heap.trend.high


def test_a_recording_too_short_to_read_says_so_in_one_line(tmp_path: Path) -> None:
    recorder = FakeRecorder([Recorded(4242, "", Recording(999.5, 2.8, leak=64))])
    with pytest.raises(RunError) as refused:
        build(tmp_path, recorder, outcome(seconds=2.5))
    message = str(refused.value)
    assert message.startswith("the fake recording: ") and "\n" not in message
    assert message.endswith("too short to read; ask for more with --requests or --duration)")


def test_a_grown_containers_adding_lines_are_read_in_the_services_own_source(
    tmp_path: Path,
) -> None:
    """The demo's planted leak: the census names ``examples.demo_service.app._retained``,
    the line that appends to it is the planted one; a module under a library root, a
    type, and a path from a thread's frame get none."""
    from gate.observed import Census, Retained, Retention, SourceLine
    from gate.run.assemble import with_adds
    from tests.support import planted_leak_line

    demo = load_scenario(DEMO_SCENARIO).members()[0]
    grown = (
        Retained("container", "examples.demo_service.app._retained", "list", 5, 900, 1.0, 7),
        Retained("container", "thread 'x': serve (app.py:3)", "list", 5, 900, 1.0, 7),
        Retained("type", "bytes", "bytes", 5, 900, 1.0, 7),
    )
    found = Retention(grown, (Census(7, "start", 1.0, 10, 0.1),), 900.0)
    added = with_adds(found, demo, (), ())
    assert added is not None
    line = planted_leak_line()
    assert added.retained[0].adds == (SourceLine("examples/demo_service/app.py", line, "__call__"),)
    assert [r.adds for r in added.retained[1:]] == [(), ()]
    library = with_adds(found, demo, (), (str(demo.service_cwd / "examples"),))
    assert library is not None and library.retained[0].adds == ()
    assert with_adds(None, demo, (), ()) is None
    # A service run as a script: its module is ``__main__``.
    (tmp_path / "serve.py").write_text("_kept = []\ndef on(x):\n    _kept.append(x)\n")
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        DEMO_SCENARIO.read_text()
        .replace('cwd = ".."', 'cwd = "."')
        .replace("python -m uvicorn examples.demo_service.app:app", "python serve.py")
        .replace(
            "../examples/demo_service/locustfile.py",
            str(DEMO_SCENARIO.parent.parent / "examples/demo_service/locustfile.py"),
        )
    )
    script = load_scenario(scenario).members()[0]
    main = Retention((dataclasses.replace(grown[0], what="__main__._kept"),), (), 900.0)
    kept = with_adds(main, script, (), ())
    assert kept is not None and kept.retained[0].adds == (SourceLine("serve.py", 3, "on"),)
