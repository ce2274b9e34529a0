"""What a run observed beside its curve and its sites: the counts the service holds
(resources), the garbage collector's work and the full collections, each process's heap,
what keeps memory alive (the census), and how the allocations were read. Frozen values,
no I/O, as :mod:`gate.model`'s.
"""

from __future__ import annotations

import dataclasses

from gate.shapes import Trend


@dataclasses.dataclass(frozen=True)
class ResourceGrowth:
    """How a count the service holds (file descriptors, sockets, threads, processes)
    moved through the steady state: the usual companions of a memory leak."""

    name: str
    """``fds``, ``sockets``, ``threads`` or ``processes`` (a field of :class:`ProcessSample`)."""
    at_steady: int
    at_end: int
    trend: Trend | None
    """Growth per request over the steady state; ``None`` with too few samples."""
    grows: bool
    """Surely (trend test and interval) and by at least the resource's minimum count."""


@dataclasses.dataclass(frozen=True)
class GcSample:
    """What the probe in one process of the service had counted at ``t``."""

    t: float
    """Seconds since the epoch."""
    collections: int
    """Collections of all generations so far."""
    full: int
    """Of them, full (generation 2) collections."""
    seconds: float
    """Time spent collecting so far."""


@dataclasses.dataclass(frozen=True)
class GcPressure:
    """The garbage collector's work, counted by memgate's agent inside the service (all
    its processes summed), at each curve point and per request over the steady state."""

    collections: tuple[int, ...]
    """Collections of all generations so far, at each curve point."""
    full: tuple[int, ...]
    """Full (generation 2) collections so far, at each curve point."""
    seconds: tuple[float, ...]
    """Time spent collecting so far, at each curve point."""
    collections_per_request: float
    full_per_1000_requests: float
    seconds_per_request: float
    """Over the steady state."""


@dataclasses.dataclass(frozen=True)
class FullCollection:
    """One full collection of one of the service's processes, as its agent wrote it."""

    t: float
    """When it ended, seconds since the epoch."""
    pause: float
    """Seconds it held the process."""
    forced: bool
    """memgate's agent made it (else the service's own collector)."""


@dataclasses.dataclass(frozen=True)
class FullCollections:
    """The full collections behind :attr:`Curve.retained`, in the measured phase, all the
    service's profiled processes together."""

    forced: int
    """Made by memgate's agent."""
    service: int
    """Made by the service's own collector (each a free retained point)."""
    median_pause_s: float
    max_pause_s: float
    """How long the collections memgate's agent made held the service."""
    share: float
    """Of the measured phase's time, the share the agent's collections held the service
    (in the process most held)."""
    unread: int = 0
    """Read live, the full collections in the run (from the service's start) whose heap
    memgate could not read: its reading did not see the marker the agent allocated
    after one within 3 s, or the next collection came first."""


@dataclasses.dataclass(frozen=True)
class ProcessCurve:
    """The heap of one profiled process of a service that forks (a prefork server's
    master and workers), on the run's curve points."""

    pid: int
    capture: str
    """Its memray capture, relative to the result's directory."""
    main: bool
    """The process memgate started (a prefork server's master); the others are forks."""
    heap: tuple[int, ...]
    """Heap at each curve point; 0 where the process was not running."""
    running: tuple[int, int]
    """First and last curve point at which the process was running."""
    trend: Trend | None
    """Heap growth over the steady state; ``None`` if it did not run through it."""
    ended: bool = False
    """It ended while the load ran (a prefork server's worker recycled after its
    ``max_requests``, or killed), and another usually took its place."""
    lifetime: Trend | None = None
    """Its heap's growth per request served by the service over the measured part of its
    own life, from all its own snapshots (not only those at the curve's points), its own
    warm-up left out; ``None`` when it ran too briefly to tell."""


@dataclasses.dataclass(frozen=True)
class SourceLine:
    """A line of the service's own code, read in its source (no allocation's frame)."""

    file: str
    """Relative to the service's folder when below it, as sites' frames are."""
    line: int
    function: str
    """The function it is in; ``<module>`` at a module's top level."""


@dataclasses.dataclass(frozen=True)
class Retained:
    """What grew in the garbage collector's census between the steady start and the end
    of the load: a container (with the path from a root to it), a type of object, or
    objects of a type that nothing the collector sees refers to (a reference native code
    took and did not give back)."""

    kind: str
    """``container``, ``type`` or ``native``."""
    what: str
    """A container's path from a root (``examples.demo_service.app._retained``); else
    the type's name."""
    type: str
    """The object's type (for a container), or the type counted."""
    before: int
    """Items (a container) or objects (a type) at the steady start."""
    after: int
    """At the end of the load."""
    per_request: float
    """Growth per request served between the two censuses."""
    pid: int
    adds: tuple[SourceLine, ...] = ()
    """A container reached from a module global: the lines of that module's file (the
    service's own) that add to it (``NAME.append(...)``, ``NAME[key] = ...``), found in
    its source when the result was assembled; empty when none was found, for another
    kind, or in a result written before memgate looked."""


@dataclasses.dataclass(frozen=True)
class Census:
    """One census of one process, and what it cost."""

    pid: int
    label: str
    """``start`` (after the warm-up) or ``end`` (after the load)."""
    t: float
    """When it began, seconds since the load's start."""
    objects: int
    """Objects reached from the roots."""
    seconds: float
    """How long the service's interpreter was held (the census's pause)."""
    truncated: bool = False
    """It stopped at its limit of objects before reaching them all."""


@dataclasses.dataclass(frozen=True)
class Retention:
    """What keeps the memory alive, by the garbage collector's census inside the service
    at the steady start and the end of the load (memgate's agent takes it; the curve
    leaves out the points taken while it ran)."""

    retained: tuple[Retained, ...]
    """What grew by enough to name, containers first, each kind most grown first."""
    censuses: tuple[Census, ...]
    requests: float
    """Requests served between the two censuses (of the main process)."""
    problems: tuple[str, ...] = ()
    """Censuses that failed or never came, one line each: what grew is then unknown."""


@dataclasses.dataclass(frozen=True)
class CountedFirst:
    """``[profile] capture = "auto"``: the counted run that came first, and why the load
    ran again traced (this run, traced, is judged)."""

    folder: str
    """Its folder, relative to this result's."""
    requests: int
    """Requests it measured."""
    why: str
    """Why the load ran again traced, in a line: why it could not decide (its heap's
    growth not ruled out, say), or that a recording check traces anyway."""


@dataclasses.dataclass(frozen=True)
class CaptureInfo:
    file: str
    """Path of the memray capture, relative to the result's directory."""
    bytes: int
    read_seconds: float
    """Time spent reading the capture into curve and sites."""
    snapshots: int
    """Memory snapshots memray recorded (after its own striding), in the main capture."""
    forks: int = 0
    """Captures of forked processes read besides the main one (``bytes`` counts all)."""
    mode: str = "file"
    """``file``: memray's capture files, read after the load; ``live``: memray's records
    streamed to memgate and read during the load (no file: ``file`` is empty, ``bytes``
    0, ``snapshots`` the points memgate kept of the main process, ``read_seconds`` from
    the end of the load to the result); ``counters``: nothing traced, the allocators'
    counters the agent wrote (no file, no sites; ``bytes`` the counters' files)."""
    polls: int | None = None
    """Live: the times memgate read the live allocations of every process."""
    stacks: int | None = None
    """Live: the allocation stacks alive at the main process's last point."""
    poll_seconds: float | None = None
    """Live: the median time one reading of a process's live allocations took."""
    backlog_bytes: int | None = None
    """Live: the most bytes of records seen waiting for memgate in a stream's socket."""
    behind_share: float | None = None
    """Live: the share of the sockets' backlog readings (one a second) that found at
    least 1 MiB waiting: memgate's reading fell behind, and the tracker's writes slowed
    the service down."""
    counted_first: CountedFirst | None = None
    """``auto``, traced: the counted run that came first, and why the load ran again."""
    problems: tuple[str, ...] = ()
    """Live: what went wrong in the reading without losing a process (a fork that ended
    before it could be read, a flame graph not written), one line each."""
