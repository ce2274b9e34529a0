"""memgate's domain values: frozen dataclasses, no I/O.

A run produces a :class:`RunResult`; ``gate.result`` turns it into ``result.json`` and
back. Times are seconds since the load started unless a name says otherwise; memory is
in bytes; ``requests`` always counts completed requests (successes and failures).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, ClassVar

from gate.observed import (
    CaptureInfo,
    FullCollections,
    GcPressure,
    ProcessCurve,
    ResourceGrowth,
    Retention,
)
from gate.shapes import (
    Analysis,
    Trend,
)

_SHOWN_PREFIX = re.compile(r"^(?:.*/)?(?:site-packages|dist-packages|lib/python\d+\.\d+)/")


def shown_file(path: str) -> str:
    """A file as people read it: a library's from the folder it is imported from
    (``gunicorn/util.py`` for ``/srv/venv/lib/python3.11/site-packages/gunicorn/util.py``,
    ``asyncio/events.py`` for the standard library's), the service's own as it is."""
    return _SHOWN_PREFIX.sub("", path)


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
    if TYPE_CHECKING:
        _hash: ClassVar[int]  # set per frame; not a field, nor in the result's JSON

    def __post_init__(self) -> None:
        # A stack of 50 frames is a dict key many times over while a run's sites are
        # summed (a Flask app's 10,000 stacks): the generated hash, a tuple made and
        # hashed in Python per frame and per look-up, took a third of reading them.
        object.__setattr__(self, "_hash", hash((self.function, self.file, self.line)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[Frame], tuple[str, str, int]]:
        return Frame, (self.function, self.file, self.line)  # hashed again where unpickled

    def __str__(self) -> str:
        return f"{self.function} at {self.file}:{self.line}"


def named_function(function: str) -> bool:
    """Whether a native frame's function has a name: memray calls the functions of a
    library without symbols (a stripped one, as Rust-built wheels are) ``<unknown>``."""
    return bool(function) and not function.startswith("<") and function != "??"


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

    @property
    def named(self) -> bool:
        """Whether memray named the function (:func:`named_function`)."""
        return named_function(self.function)

    def __str__(self) -> str:
        """``function in library.so (file.c:12)``, as much of it as is known; a function
        with no name is told by its library: ``in somelib/_core.cpython-311-....so (no
        symbols)``. An installed library is shown from its import root, as files are
        (:func:`shown_file`), another by its name."""
        library = shown_file(self.library)
        if library == self.library:
            library = library.rpartition("/")[2]
        if not self.named:
            return f"in {library} (no symbols)" if library else self.function or "<unknown>"
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
    dirty: tuple[str, ...] | None = None
    """The checkout's tracked files changed since ``commit`` (``git diff --name-only
    HEAD``, at most 20, from its top): the run measured them, not ``commit`` alone.
    ``None``: not a checkout, or not recorded."""


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
