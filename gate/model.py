"""memgate's domain values: frozen dataclasses, no I/O.

A run produces a :class:`RunResult`; ``gate.result`` turns it into ``result.json`` and
back. Times are seconds since the load started unless a name says otherwise; memory is
in bytes; ``requests`` always counts completed requests (successes and failures).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


def scenario_key(name: str, service: str | None) -> str:
    """``NAME``, or ``NAME/SERVICE`` for one of a scenario's several services: names a
    run's baseline history, and the run in every report."""
    return f"{name}/{service}" if service else name


@dataclasses.dataclass(frozen=True)
class Frame:
    """One Python stack frame of an allocation."""

    function: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.function} at {self.file}:{self.line}"


@dataclasses.dataclass(frozen=True)
class NativeFrame:
    """One native (C) frame of an allocation's stack, recorded with ``[profile] native``."""

    function: str
    file: str
    """The source file from the library's debug information, ``<unknown>`` without it."""
    line: int
    library: str = ""
    """The shared library (or executable) that defines ``function``; empty when none of
    those the service had loaded does."""
    extension: bool = False
    """``library`` is an extension's: neither the interpreter, the C runtime nor memray."""

    def __str__(self) -> str:
        """``function in library.so (file.c:12)``, as much of it as is known."""
        library = self.library.rpartition("/")[2]
        text = f"{self.function} in {library}" if library else self.function
        return f"{text} ({self.file}:{self.line})" if self.line else text


@dataclasses.dataclass(frozen=True)
class LoadSample:
    """A point of the load timeline."""

    t: float
    """Seconds since the load started."""
    requests: int
    """Requests completed so far, failures included."""
    failures: int
    """Failed requests so far."""


@dataclasses.dataclass(frozen=True)
class ProcessSample:
    """The service's process tree at one moment (sampled from outside with psutil)."""

    t: float
    requests: float
    """Requests completed at ``t``, interpolated on the load timeline."""
    rss: int
    """Resident set size summed over the tree."""
    rss_anon: int
    """Anonymous resident memory summed over the tree (RSS less file-backed and shared
    pages, such as memray's memory-mapped capture file)."""
    threads: int
    fds: int
    """Open file descriptors summed over the tree."""
    processes: int
    sockets: int = 0
    """Open sockets (file descriptors that are sockets) summed over the tree; 0 where the
    system does not say (not Linux)."""


@dataclasses.dataclass(frozen=True)
class MemorySnapshot:
    """What memray records every 10 ms: heap and RSS of the profiled process."""

    t: float
    """Seconds since the epoch."""
    rss: int
    heap: int
    retained: bool = False
    """Taken right after a full collection of the garbage collector's (one memgate's
    agent made, or the service's own): its heap is what survived it, no garbage."""


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """Memory of the profiled process after ``requests`` requests."""

    requests: float
    t: float
    heap: int
    """Bytes memray saw allocated and not yet freed."""
    rss: int
    """Anonymous resident memory of the service's processes (from the process samples;
    memray's own RSS figure when there are none). File-backed pages are left out: the
    capture file memray maps into the process makes them swing by megabytes."""


@dataclasses.dataclass(frozen=True)
class RetainedPoint:
    """The heap right after a full collection of the garbage collector: the memory that
    survived it (of a service that forks: the processes' sum, :mod:`gate.run.retained`)."""

    requests: float
    t: float
    heap: int
    pause: float
    """Seconds the collection held the service (of the process the curve is read at)."""
    forced: bool
    """memgate's agent made it (else the service's own collector did)."""


@dataclasses.dataclass(frozen=True)
class Curve:
    """Heap and RSS against requests completed, from the start to the end of the load."""

    points: tuple[CurvePoint, ...]
    warmup_requests: int
    """Requests sent as warm-up; points beyond this are the measured phase."""
    warmup_index: int
    """Index of the first point at or past the warm-up."""
    ends_at_stop: bool = False
    """The last point is the load's last snapshot before its users were told to stop.
    ``False`` in results written before: their last points showed what the service freed
    as the users' connections closed, so their final figures do not compare."""
    retained: tuple[RetainedPoint, ...] = ()
    """The heap right after each full collection during the load, oldest first: the
    memory that survived it. Leaks are judged on these when there are enough of them
    (:attr:`Analysis.basis`); empty for results written before, or with ``[profile]
    retained_heap = false``."""


class Shape(enum.StrEnum):
    """How memory behaves over the steady state."""

    FLAT = "flat"
    """Neither grows nor steps: what a healthy service looks like."""
    LEAK = "leak"
    """Keeps growing linearly with requests."""
    PLATEAU = "plateau"
    """Grew, then levelled off (a bounded cache, a pool filling)."""
    FRAGMENTATION = "fragmentation"
    """RSS keeps growing while the traced heap does not (only for the whole run)."""
    STEP = "step"
    """Jumped once between two flat levels (a buffer resized, a batch loaded)."""


@dataclasses.dataclass(frozen=True)
class Trend:
    """Growth of one series over the steady state, in bytes per request."""

    slope: float
    """Theil-Sen estimate on block medians."""
    low: float
    high: float
    """Confidence interval of the slope (95%), widened for the residuals' autocorrelation."""
    p_value: float
    """Mann-Kendall trend test with the Hamed-Rao correction for autocorrelation."""
    tau: float
    """Kendall's tau of the block medians against requests: 1 grows at every block."""
    noise: float
    """Robust spread (1.4826 x MAD) of the block medians around the fitted line, bytes."""
    growth: float
    """``slope`` times the requests the steady state spans, bytes."""


@dataclasses.dataclass(frozen=True)
class ModelFit:
    """How well one shape's model fits a curve's block medians."""

    model: str
    """``flat`` (constant), ``linear``, ``plateau`` (rise then flat) or ``step`` (one jump)."""
    rms: float
    """Root-mean-square residual, bytes."""


@dataclasses.dataclass(frozen=True)
class CurveShape:
    """The shape of one curve (heap or RSS) and the evidence for it."""

    shape: Shape
    trend: Trend
    """Over the steady state."""
    rise_before_steady: float
    """Bytes gained between the end of the configured warm-up and the steady state."""
    fits: tuple[ModelFit, ...]
    """Every model's fit over the measured phase (after the configured warm-up)."""
    reason: str
    """One sentence: why this shape."""


@dataclasses.dataclass(frozen=True)
class SteadyState:
    """Where the warm-up really ended: the analysis looks only at what follows."""

    index: int
    """First curve point of the steady state."""
    requests: float
    reason: str
    retained_index: int | None = None
    """Judged on the retained heap, its first point of the steady state (an index into
    ``Curve.retained``); else ``None``."""


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What the curves say, for the whole run."""

    steady: SteadyState
    heap: CurveShape
    rss: CurveShape
    shape: Shape
    """The run's shape: the heap's, or ``fragmentation`` when RSS leaks and the heap does not."""
    basis: str = "heap"
    """What the heap's shape and growth were judged on: ``retained`` (the heap right after
    each full collection, :attr:`Curve.retained`) or ``heap`` (every point of the curve,
    garbage waiting for the collector included: too few full collections, or results
    written before)."""
    unconfirmed: bool = False
    """Judged on every point for want of full collections, the heap leaks, but the few
    read right after one refute it (they grew by less than half its interval's lower
    bound, over half the steady state): garbage waiting for a full collection may have
    ramped it, and the leak is not certain."""


@dataclasses.dataclass(frozen=True)
class Site:
    """An allocation stack and how much of what it allocated stayed alive."""

    stack: tuple[Frame, ...]
    """Innermost frame first."""
    user_frame: Frame | None
    """The innermost frame in the user's own code (not the standard library or
    site-packages), where an annotation belongs; ``None`` when there is none."""
    live_bytes_steady: int
    """Live bytes at the first point of the steady state."""
    live_bytes_end: int
    """Live bytes at the last point of the load."""
    trend: Trend
    """Growth over the steady state."""
    confidence: float
    """0 to 1: how surely this site grows with requests (Kendall's tau, discounted by the
    trend test's p-value); a cache filled once scores near 0, a leak near 1."""
    series: tuple[int, ...]
    """Live bytes at each point of the curve."""
    basis: str = "heap"
    """What ``trend`` was measured on: ``retained`` (its live bytes right after each full
    collection) or ``heap`` (at every point of the curve; ``series`` always is)."""
    library_frame: Frame | None = None
    """With no user frame, the innermost frame in an installed library (site-packages):
    the service's own code in the stack, if any, only started the server."""
    native: tuple[NativeFrame, ...] = ()
    """With ``[profile] native``: the native frames called by the innermost Python frame,
    innermost first (when several native paths share the Python stack, the one whose
    allocations grew most)."""

    @property
    def growth_per_request(self) -> float:
        return self.trend.slope

    @property
    def frame(self) -> Frame | None:
        """The frame the site is named by, wherever it is shown or kept: its user frame,
        else its innermost frame in an installed library, else its innermost one."""
        return self.user_frame or self.library_frame or (self.stack[0] if self.stack else None)

    @property
    def native_frame(self) -> NativeFrame | None:
        """The innermost native frame in an extension: shown under the Python line."""
        return next((frame for frame in self.native if frame.extension), None)

    @property
    def in_user_code(self) -> bool:
        """Whether :attr:`frame` is the user's own code (else it is marked as not)."""
        return self.user_frame is not None


@dataclasses.dataclass(frozen=True)
class EndpointStats:
    method: str
    name: str
    requests: int
    failures: int
    median_ms: float
    p95_ms: float


FAILURE_REASONS = 10
"""Failure reasons a result keeps, most frequent first."""


@dataclasses.dataclass(frozen=True)
class FailureReason:
    """Why requests failed, as Locust groups them."""

    method: str
    name: str
    """The request's name (its URL, or the name the locustfile gave it)."""
    error: str
    """What Locust recorded: the exception, ``HTTPError('404 Client Error: ...')``."""
    occurrences: int

    def __str__(self) -> str:
        """``GET /items/[id]: HTTPError('404 Client Error: ...') (120 times)``."""
        what = f"{self.method} {self.name}".strip()
        times = "once" if self.occurrences == 1 else f"{self.occurrences:,} times"
        return f"{what}: {self.error} ({times})"


@dataclasses.dataclass(frozen=True)
class LoadStats:
    requests: int
    failures: int
    warmup_requests: int
    """Requests completed when the warm-up ended."""
    measured_requests: int
    """Requests completed after the warm-up."""
    duration_s: float
    measured_duration_s: float
    requests_per_second: float
    """Throughput of the measured phase."""
    stop_reason: str
    """``requests``, ``duration`` or ``time_limit``: which bound ended the load; ``leak``:
    a soak stopped early, its leak certain; ``shape``: the locustfile's ``LoadTestShape``
    ended it first."""
    endpoints: tuple[EndpointStats, ...]
    failure_reasons: tuple[FailureReason, ...] = ()
    """Why requests failed, most frequent first (at most :data:`FAILURE_REASONS`)."""

    @property
    def measured_nothing(self) -> str | None:
        """Why this load gave nothing to measure, or ``None``: the rule every entry point
        holds a result to (a run refuses such a load before it writes a result; compare,
        report and baseline refuse a result that says so)."""
        if self.requests - self.failures <= 0:
            return f"no successful requests ({self.requests:,} sent, all failed)"
        if self.measured_requests <= 0:
            return "no requests measured after the warm-up"
        if self.stop_reason == "time_limit":
            return "the load hit its time limit before the bound asked for"
        return None


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
    the end of the load to the result)."""
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
    problems: tuple[str, ...] = ()
    """Live: what went wrong in the reading without losing a process (a fork that ended
    before it could be read, a flame graph not written), one line each."""


@dataclasses.dataclass(frozen=True)
class ScenarioRef:
    name: str
    path: str
    sha256: str
    service: str | None = None
    """In a scenario of several services, the one this result measured."""

    @property
    def key(self) -> str:
        return scenario_key(self.name, self.service)


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where and with what a run was made."""

    started_at: str
    """ISO 8601, UTC."""
    memgate: str
    python: str
    memray: str
    locust: str
    platform: str
    hostname: str
    commit: str | None
    """``git rev-parse HEAD`` of the service's working directory, if it is a checkout."""
    branch: str | None
    """The branch (GitHub's head or pushed branch in Actions, else git's), if known."""
    env_key: str
    """Runs are compared only within one environment key (see ``gate.provenance``)."""
    distributions: dict[str, str] | None = None
    """The service interpreter's distributions and versions (``None``: not recorded)."""
    packages: dict[str, list[str]] | None = None
    """Its top-level packages and the distributions holding each (a result's only: the
    history's summaries leave it out)."""
    repository: str | None = None
    """The repository's web address on GitHub (``https://github.com/OWNER/NAME``): the
    workflow's in Actions, else the ``origin`` remote's if it is on github.com."""
    repository_path: str | None = None
    """The service's working directory within the checkout (POSIX, ``""`` at its top):
    with ``repository`` and ``commit``, the service's own files link to their lines."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Everything one ``memgate run`` measured; written as ``result.json``."""

    schema_version: int
    scenario: ScenarioRef
    settings: dict[str, Any]
    """The effective scenario (after command-line overrides), as JSON."""
    provenance: Provenance
    load: LoadStats
    curve: Curve
    analysis: Analysis
    sites: tuple[Site, ...]
    """Sites most likely to be leaking first (growth per request times confidence)."""
    timeline: tuple[LoadSample, ...]
    processes: tuple[ProcessSample, ...]
    capture: CaptureInfo
    files: dict[str, str]
    """Other files of the run (service log, load log), relative to the result's directory."""
    resources: tuple[ResourceGrowth, ...] = ()
    """File descriptors, sockets, threads and processes over the steady state (empty for
    results written before memgate measured them)."""
    gc: GcPressure | None = None
    """``None`` when the probe wrote nothing (an older result, or a service that could
    not run it)."""
    process_curves: tuple[ProcessCurve, ...] = ()
    """Per process, when the service forked profiled processes (``curve`` is their sum);
    empty for a single process."""
    retention: Retention | None = None
    """``None`` when no census was taken (an older result, ``[profile] census = false``,
    or a service whose agent did not answer)."""
    full_collections: FullCollections | None = None
    """``None`` for results written before, or with ``[profile] retained_heap = false``."""
