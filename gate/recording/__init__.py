"""How the service's allocations are recorded, and read back: one :class:`Recorder` per
way of recording, chosen by ``[profile] capture``.

- ``live`` (:mod:`gate.recording.live.recorder`): memray's tracker in each process streams
  to memgate, which reads it while the load runs (``gate.recording.live``);
- ``file`` (:mod:`gate.recording.file`): memray's tracker writes a capture file per
  process, read once the service has stopped (:mod:`gate.recording.capture_file`);
- ``counters`` (:mod:`gate.recording.counters`): no tracker; the agent reads the
  allocators' own counters (the heap, exactly, but no stacks) while the load runs;
- ``sampled`` (:mod:`gate.recording.sampled`): the counters, and the agent's heap
  sampler's live bytes per stack (one allocation in ``sample_bytes`` sampled).

A recorder tells memgate's agent in the service what to start (``agent_settings``),
follows what it records while the service runs, and hands the result's builder one
:class:`Recording` per profiled process, which reads alike whatever recorded it: memory
snapshots, and each stack's live bytes at chosen snapshots. The builder
(:mod:`gate.run.assemble`) knows no mode: what differs between recorders for the reading
is in :class:`Timing`. :class:`gate.service.process.ServiceProcess` keeps only the process's life.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from gate.model import MemorySnapshot
from gate.observed import CaptureInfo
from gate.recording.capture_file import StackLiveBytes
from gate.scenario import ProfileSpec


class Recording(Protocol):
    """What was recorded of one process: memory snapshots, and live bytes by stack."""

    def snapshots(self) -> list[MemorySnapshot]: ...

    def live_bytes_by_stack(self, indexes: Sequence[int]) -> Iterator[StackLiveBytes]:
        """Live bytes of each stack at each snapshot index in ``indexes`` (0 at a
        negative index: the process was not running)."""
        ...


class Recorded(NamedTuple):
    """One profiled process's recording."""

    pid: int
    name: str
    """Its capture file's name; empty when nothing was written (read live)."""
    recording: Recording


@dataclasses.dataclass(frozen=True)
class Timing:
    """What the result's builder must know of how a recorder's snapshots were taken."""

    after_end_s: float = 0.0
    """A process read up to this long after the load's end counts as read through it."""
    late_s: float = 0.0
    """How much later than the snapshots' usual spacing the last one in the load may come."""
    stamped_in_service: bool = True
    """Snapshots stamped in the service as they were taken (a capture file): a census's
    window is its time and a margin, the first snapshot after a full collection's end is
    the heap right after it, and the agent's own allocations are kept out by those
    windows. ``False``, stamped by memgate as it reads them (live): the reading may lag,
    so a census's window is only its own time, the agent's allocations are taken out of
    every point, and the recorder marks the snapshots right after full collections."""


class Recorder(Protocol):
    """One way of recording the service's allocations (see the module's docstring)."""

    mode: str
    """The result's ``capture.mode``."""
    timing: Timing
    streams: bool
    """Read while the load runs (a soak watches its heap; the result is built while the
    service stops); else read once the service has stopped."""
    finishes_on_exit: bool
    """The service must exit of itself to finish the recording (memray writes a capture
    file's end at exit): it is stopped with SIGINT before SIGTERM."""
    read_after_census: bool
    """The recordings are read once the census after the load is done: the census then
    has the machine's cores to itself, and the service's stop, which waits for it,
    starts sooner (a Flask app's result came 0.8-0.9 s after the load, 1.0-1.3 s read
    beside the census). ``False``: read while the census counts (memray's live streams,
    which carry the census's own allocations)."""
    traces: bool
    """Allocations are traced (memray): sites are recorded, and a process that exec'd is
    one memray is no longer in. ``False``: the agent counts, and records no stack."""
    waits_for_collections: bool
    """The load's requests bound waits until :meth:`retained_so_far` is enough: a
    service recorded so cheaply serves a check's requests in too few full collections."""
    env_suffix: str
    """What ends the environment key of its runs (``counters``, ``sampled``; empty for
    memray's): runs recorded otherwise compare only as another environment."""

    def agent_settings(self) -> dict[str, object]:
        """What memgate's agent is told about recording (``capture``, ``port``, ``file``)."""
        ...

    def service_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The variables the recording sets in the service's environment ``env`` (before
        it starts): none, or glibc's tunables for a count of malloc's."""
        ...

    def clear(self) -> None:
        """Remove what an earlier run left that would be read as this run's."""
        ...

    def connect(self, pid: int, alive: Callable[[], bool]) -> None:
        """Once the service started (as process ``pid``): wait until its recording can be
        followed (:class:`gate.errors.RunError` if not, while ``alive()``)."""
        ...

    def forks(self) -> list[int]:
        """The forked processes whose recording it follows now (a fork that ended, or
        whose pid another process took since, may be among them)."""
        ...

    def records(self, pid: int) -> bool | None:
        """Whether process ``pid`` still runs what records it (a process that exec'd
        another program has lost it); ``None`` when that cannot be told."""
        ...

    def stop(self) -> None:
        """The load ended: take the last point, and stop following."""
        ...

    def stream_ended(self) -> bool:
        """Whether the main process's recording ended while the service may still run."""
        ...

    def heap_so_far(self, min_retained: int) -> tuple[list[float], list[int]]:
        """While the load runs: the times of the points so far and the heap at each
        (right after full collections once there are ``min_retained``, if not 0); empty
        when nothing is read before the end."""
        ...

    def retained_so_far(self, since: float) -> int:
        """While the load runs: the points right after full collections read so far from
        ``since`` (seconds since the epoch) on (of a service that forks, summed:
        :func:`gate.analysis.curve.summed_at_collections`)."""
        ...

    def open(self, main_pid: int, opened: contextlib.ExitStack, progress: bool) -> list[Recorded]:
        """The recordings of the service's processes, its main process's first, each
        open until ``opened`` closes (``progress``: show the reading's progress)."""
        ...

    def capture_info(
        self, recorded: Sequence[Recorded], snapshots: int, read_started: float, load_end: float
    ) -> CaptureInfo:
        """The result's account of the recording (``read_started``: ``time.perf_counter()``
        when the reading began; ``load_end``: the load's end, ``time.time()``)."""
        ...

    def collections_missed(self) -> int:
        """Full collections whose heap right after was not read."""
        ...

    def describe(self) -> str:
        """How errors name the recording: ``the live capture of the service``, a path."""
        ...


def recorder_for(profile: ProfileSpec, folder: Path, capture: Path, who: str) -> Recorder:
    """The recorder ``profile.capture`` names, writing into ``folder`` (a capture file's
    main path is ``capture``); ``who`` names the service in messages."""
    if profile.capture == "sampled":
        from gate.recording.sampled import SampledRecorder

        return SampledRecorder(folder, who, profile.census, profile.sample_bytes)
    if profile.capture in ("counters", "auto"):  # auto: a traced run names the lines
        from gate.recording.counters import CountersRecorder

        return CountersRecorder(folder, who, profile.census)
    if profile.capture == "file":
        from gate.recording.file import FileRecorder

        return FileRecorder(capture, who)
    from gate.recording.live.recorder import LiveRecorder

    return LiveRecorder(profile, folder, capture, who)
