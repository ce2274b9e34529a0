"""A way of recording that memgate does not ship, plugged in through the recorder seam
(``gate.recording``): a whole run of the real demo service under real Locust, its
memory read by a fake recorder that samples the process's RSS from outside. Nothing of
``gate`` changes for it: the service's life, the load and the result's builder know no
recorder."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psutil
import pytest

import gate.service.process
from gate.model import MemorySnapshot
from gate.recording import Recorded
from gate.recording.capture_file import StackLiveBytes
from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario
from gate.shapes import Shape
from tests.support import DEMO_SCENARIO
from tests.support.recorders import QuietRecorder

pytestmark = pytest.mark.integration


class Sampled:
    """The RSS samples of one process, read as a recording with no stacks."""

    def __init__(self, points: list[MemorySnapshot]) -> None:
        self.points = points

    def snapshots(self) -> list[MemorySnapshot]:
        return list(self.points)

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        return iter(())


class RssRecorder(QuietRecorder):
    """Samples the service's main process's RSS every 20 ms, from outside."""

    mode = "rss"  # stamped as taken: no lag to allow for (Timing's defaults)

    def __init__(self) -> None:
        self.points: list[MemorySnapshot] = []
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.agent_told: dict[str, object] = {}

    def agent_settings(self) -> dict[str, object]:
        self.agent_told = super().agent_settings()  # the agent starts no tracker
        return self.agent_told

    def connect(self, pid: int, alive: Callable[[], bool]) -> None:
        process = psutil.Process(pid)

        def sample() -> None:
            while not self.stopped.wait(0.02):
                with contextlib.suppress(psutil.Error):
                    rss = process.memory_info().rss
                    self.points.append(MemorySnapshot(t=time.time(), rss=rss, heap=rss))

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()

    def open(self, main_pid: int, opened: contextlib.ExitStack, progress: bool) -> list[Recorded]:
        return [Recorded(main_pid, "", Sampled(self.points))]


def test_a_recorder_plugged_in_runs_a_whole_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[RssRecorder] = []

    def recorder_for(*args: object) -> RssRecorder:
        made.append(RssRecorder())
        return made[-1]

    monkeypatch.setattr(gate.service.process, "recorder_for", recorder_for)
    # 4 KiB a request, kept: malloc's own blocks, so RSS grows with them.
    scenario = load_scenario(DEMO_SCENARIO).with_overrides(
        env={"DEMO_LEAK_BYTES": "4096"}, requests=3000, warmup=300
    )
    result = run_scenario(scenario, tmp_path / "out")
    (recorder,) = made
    assert recorder.agent_told == {"capture": "none"} and recorder.stopped.is_set()
    assert result.capture.mode == "rss" and result.capture.snapshots > 20
    # The curve's heap is the recorder's samples, read at the curve's points.
    sampled = {p.heap for p in recorder.points}
    assert {p.heap for p in result.curve.points} <= sampled
    assert result.analysis.shape is Shape.LEAK
    assert 2048 < result.analysis.heap.trend.slope < 8192
    assert result.sites == ()
