"""The ``file`` recorder: memray's tracker in each process writes a capture file
(``capture.bin``, a fork's ``capture.bin.PID``), read once the service has stopped."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gate.observed import CaptureInfo
from gate.recording import Recorded, Timing
from gate.recording.capture_file import Capture
from gate.service.tree import maps_memray


class FileRecorder:
    """memray's capture files: nothing to follow while the service runs."""

    mode = "file"
    timing = Timing()
    streams = False
    finishes_on_exit = True  # memray writes the capture's end when the service exits
    read_after_census = True
    traces = True
    waits_for_collections = False
    env_suffix = ""

    def __init__(self, capture: Path, who: str) -> None:
        self.capture = capture
        self.who = who
        self._sizes: dict[str, int] = {}

    def agent_settings(self) -> dict[str, object]:
        return {"capture": "file", "port": None, "file": str(self.capture)}

    def service_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {}

    def clear(self) -> None:
        pass  # the agent's tracker replaces the main capture; forks' go with the folder's

    def forks(self) -> list[int]:
        return [pid for pid, _ in self.captures(-1)[1:]]

    def records(self, pid: int) -> bool | None:
        return maps_memray(pid)

    def connect(self, pid: int, alive: Callable[[], bool]) -> None:
        pass

    def stop(self) -> None:
        pass

    def stream_ended(self) -> bool:
        return False

    def retained_so_far(self, since: float) -> int:
        return 0

    def heap_so_far(self, min_retained: int) -> tuple[list[float], list[int]]:
        return [], []

    def captures(self, main_pid: int) -> list[tuple[int, Path]]:
        """``(pid, capture)`` of the service's own process, then of each forked process
        (memray names a fork's capture after the main one and its pid), in pid order."""
        forks = []
        for path in self.capture.parent.glob(self.capture.name + ".*"):
            pid = path.name.removeprefix(self.capture.name + ".")
            if pid.isdigit():
                forks.append((int(pid), path))
        return [(main_pid, self.capture), *sorted(forks)]

    def open(self, main_pid: int, opened: contextlib.ExitStack, progress: bool) -> list[Recorded]:
        captures = self.captures(main_pid)
        # Sizes taken once, before the files are read; a file gone already is left out
        # (the main one is then refused as missing when it is opened).
        self._sizes = {}
        for _, path in captures:
            with contextlib.suppress(OSError):
                self._sizes[path.name] = path.stat().st_size
        # A fork that ended before writing anything (or exec'd another program) left an
        # empty capture: it profiled nothing, as check_profiled judges.
        return [
            Recorded(pid, path.name, opened.enter_context(Capture(path, show_progress=progress)))
            for n, (pid, path) in enumerate(captures)
            if n == 0 or self._sizes.get(path.name)
        ]

    def capture_info(
        self, recorded: Sequence[Recorded], snapshots: int, read_started: float, load_end: float
    ) -> CaptureInfo:
        return CaptureInfo(
            file=self.capture.name,
            bytes=sum(self._sizes.get(r.name, 0) for r in recorded),
            read_seconds=round(time.perf_counter() - read_started, 3),
            snapshots=snapshots,
            forks=len(recorded) - 1,
            mode=self.mode,
        )

    def collections_missed(self) -> int:
        return 0

    def describe(self) -> str:
        return str(self.capture)
