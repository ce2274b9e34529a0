"""A recorder that records nothing by itself: the fakes of the recorder seam
(``gate.recording.Recorder``) build on it, giving ``open`` their recordings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from gate.observed import CaptureInfo
from gate.recording import Recorded, Timing


class QuietRecorder:
    """Tells the agent to start no tracker, follows nothing, and accounts for the
    recordings its subclass's ``open`` hands out."""

    mode = "fake"
    timing = Timing()
    streams = False
    finishes_on_exit = False
    read_after_census = False
    traces = True
    waits_for_collections = False
    env_suffix = ""

    def agent_settings(self) -> dict[str, object]:
        return {"capture": "none"}

    def service_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {}

    def clear(self) -> None:
        pass

    def connect(self, pid: int, alive: Callable[[], bool]) -> None:
        pass

    def forks(self) -> list[int]:
        return []

    def records(self, pid: int) -> bool | None:
        return True

    def stop(self) -> None:
        pass

    def stream_ended(self) -> bool:
        return False

    def retained_so_far(self, since: float) -> int:
        return 0

    def heap_so_far(self, min_retained: int) -> tuple[list[float], list[int]]:
        return [], []

    def capture_info(
        self, recorded: Sequence[Recorded], snapshots: int, read_started: float, load_end: float
    ) -> CaptureInfo:
        return CaptureInfo("", 0, 0.0, snapshots, forks=len(recorded) - 1, mode=self.mode)

    def collections_missed(self) -> int:
        return 0

    def describe(self) -> str:
        return f"the {self.mode} recording"
