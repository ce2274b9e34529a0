"""memgate's domain values: frozen dataclasses, no I/O.

A run produces a :class:`RunResult`; ``gate.result`` turns it into ``result.json`` and
back. Times are seconds since the load started unless a name says otherwise; memory is
in bytes; ``requests`` always counts completed requests (successes and failures).
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Frame:
    """One Python stack frame of an allocation."""

    function: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.function} at {self.file}:{self.line}"


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
    threads: int
    fds: int
    """Open file descriptors summed over the tree."""
    processes: int


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """Memory of the profiled process after ``requests`` requests."""

    requests: float
    t: float
    heap: int
    """Bytes memray saw allocated and not yet freed."""
    rss: int


@dataclasses.dataclass(frozen=True)
class Curve:
    """Heap and RSS against requests completed, from the start to the end of the load."""

    points: tuple[CurvePoint, ...]
    warmup_requests: int
    """Requests sent as warm-up; points beyond this are the measured phase."""
    warmup_index: int
    """Index of the first point at or past the warm-up."""


@dataclasses.dataclass(frozen=True)
class Site:
    """An allocation stack and how much of what it allocated stayed alive."""

    stack: tuple[Frame, ...]
    """Innermost frame first."""
    user_frame: Frame | None
    """The innermost frame in the user's own code (not the standard library or
    site-packages), where an annotation belongs; ``None`` when there is none."""
    live_bytes_warmup: int
    """Live bytes at the curve point where warm-up ends."""
    live_bytes_end: int
    """Live bytes at the last point of the load."""
    growth_per_request: float
    """(end - warm-up) / measured requests."""
    series: tuple[int, ...]
    """Live bytes at each point of the curve."""


@dataclasses.dataclass(frozen=True)
class EndpointStats:
    method: str
    name: str
    requests: int
    failures: int
    median_ms: float
    p95_ms: float


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
    """``requests``, ``duration`` or ``time_limit``: which bound ended the load."""
    endpoints: tuple[EndpointStats, ...]


@dataclasses.dataclass(frozen=True)
class CaptureInfo:
    file: str
    """Path of the memray capture, relative to the result's directory."""
    bytes: int
    read_seconds: float
    """Time spent reading the capture into curve and sites."""
    snapshots: int
    """Memory snapshots memray recorded (after its own striding)."""


@dataclasses.dataclass(frozen=True)
class ScenarioRef:
    name: str
    path: str
    sha256: str


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
    sites: tuple[Site, ...]
    """Sites ranked by growth during the measured phase, largest first."""
    timeline: tuple[LoadSample, ...]
    processes: tuple[ProcessSample, ...]
    capture: CaptureInfo
    files: dict[str, str]
    """Other files of the run (service log, load log), relative to the result's directory."""
