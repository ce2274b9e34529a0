"""The ``live`` recorder: memray's tracker in each process streams to memgate, which reads
it while the load runs (:class:`gate.recording.live.LiveCapture`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gate.loopback import free_port
from gate.observed import CaptureInfo
from gate.recording import Recorded, Timing
from gate.recording.live.reader import LiveCapture
from gate.scenario import ProfileSpec
from gate.service.tree import maps_memray

POLL_S = 0.02
"""How often the live allocations are read at first (or less often, when a reading takes
long: ``gate.recording.live.process.RELIEF``): a load of a second still gets dozens of
points; the spacing doubles each time the points kept reach their cap."""
END_S = 5.0
"""The last poll comes once the load has ended (and before the services stop): a process
read up to this long after the load's end counts as read through it."""
LATE_S = 1.0
"""How much later than the polls' usual spacing the last one in the load may come: one
slow poll (a reading of many stacks) and the pause after it."""


class LiveRecorder:
    """memray's live streams, on a free port memgate chose for the main process (the
    forks announce theirs)."""

    mode = "live"
    timing = Timing(after_end_s=END_S, late_s=LATE_S, stamped_in_service=False)
    streams = True
    finishes_on_exit = False  # the last point is taken before the stop: nothing to finish
    read_after_census = False
    traces = True
    waits_for_collections = False
    env_suffix = ""

    def __init__(self, profile: ProfileSpec, folder: Path, capture: Path, who: str) -> None:
        self.capture = capture
        self.who = who
        self.port = free_port()
        self.reader = LiveCapture(
            self.port,
            folder,
            interval_s=POLL_S,
            flamegraphs=folder if profile.flamegraph else None,
            trace_python_allocators=profile.trace_python_allocators,
            full_collections=profile.retained_heap,
        )

    def agent_settings(self) -> dict[str, object]:
        return {"capture": "live", "port": self.port, "file": str(self.capture)}

    def service_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {}

    def clear(self) -> None:
        self.capture.unlink(missing_ok=True)  # a capture file is not this run's

    def forks(self) -> list[int]:
        return self.reader.fork_pids()

    def records(self, pid: int) -> bool | None:
        return maps_memray(pid)

    def connect(self, pid: int, alive: Callable[[], bool]) -> None:
        self.reader.connect(alive=alive)

    def stop(self) -> None:
        self.reader.stop()

    def stream_ended(self) -> bool:
        return self.reader.main_ended()

    def retained_so_far(self, since: float) -> int:
        return 0

    def heap_so_far(self, min_retained: int) -> tuple[list[float], list[int]]:
        return self.reader.heap_so_far(min_retained=min_retained)

    def open(self, main_pid: int, opened: contextlib.ExitStack, progress: bool) -> list[Recorded]:
        return [Recorded(p.pid, "", p) for p in self.reader.processes()]

    def capture_info(
        self, recorded: Sequence[Recorded], snapshots: int, read_started: float, load_end: float
    ) -> CaptureInfo:
        live = self.reader.stats
        return CaptureInfo(
            file="",
            bytes=0,
            # The wait for the result once the load ended (the runner sets it again once
            # the services have stopped).
            read_seconds=round(time.time() - load_end, 3),
            snapshots=snapshots,
            forks=len(recorded) - 1,
            mode=self.mode,
            polls=live.polls,
            stacks=live.last_poll_stacks,
            poll_seconds=round(live.median_poll_s, 4),
            backlog_bytes=live.max_backlog_bytes,
            behind_share=round(live.behind_polls / max(live.backlog_reads, 1), 3),
            problems=live.problems,
        )

    def collections_missed(self) -> int:
        return self.reader.stats.retained_missed

    def describe(self) -> str:
        return f"the live capture of the {self.who}"
