"""What keeps the memory alive: the growth between two censuses of the garbage collector's
objects that memgate's agent took inside the service, one after the warm-up and one
after the load.

The allocation sites say where leaking memory was allocated; the census says what holds
it: a container that grows with the requests (named by the path from a module global or
a thread's frame to it), a type of object that grows in number, or objects that nothing
the collector sees refers to (a reference an extension took and never gave back).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from gate.observed import Census, Retained, Retention

MIN_GROWTH = 50
"""Items (or objects) a container (or type) must gain to be named."""
MIN_PER_REQUEST = 0.01
"""And per request served between the censuses: one in a hundred requests."""
SHOWN = 5
"""Of each kind, the most grown, per process."""


@dataclasses.dataclass(frozen=True)
class CensusRecord:
    """One census as the agent wrote it (``census.LABEL.PID.json``)."""

    pid: int
    label: str
    t: float
    """Seconds since the epoch."""
    objects: int
    seconds: float
    truncated: bool
    types: Mapping[str, int]
    """Objects by type: at the start, every object the collector tracks; at the end,
    those the roots reach."""
    orphans: Mapping[str, int]
    """At the end, the objects nothing the collector sees refers to, by type."""
    grown: Sequence[tuple[str, int, int, str]] = ()
    """At the end: ``(type, items before, items after, path)`` of each container that
    grew."""
    frozen: int = 0
    """Objects ``gc.freeze()`` had moved out of the collector's sight at the start: the
    start's census did not count them."""


def retention(
    starts: Sequence[CensusRecord],
    ends: Sequence[CensusRecord],
    requests_at: Callable[[float], float],
    *,
    load_start: float,
    main_pid: int,
    problems: Sequence[str] = (),
) -> Retention | None:
    """What grew between each process's start and end census, by at least
    :data:`MIN_GROWTH` and :data:`MIN_PER_REQUEST` per request served between them
    (``requests_at``: requests served by a time), and the censuses' ``problems``;
    ``None`` when no process took both and nothing went wrong (none was asked for)."""
    by_pid = {c.pid: c for c in starts}
    pairs = [(by_pid[end.pid], end) for end in ends if end.pid in by_pid]
    if not pairs and not problems:
        return None
    retained: list[Retained] = []
    main_requests = 0.0
    for start, end in pairs:
        served = requests_at(end.t) - requests_at(start.t)
        if end.pid == main_pid or not main_requests:
            main_requests = served
        if served <= 0:
            continue
        found = [
            Retained("container", path, kind, before, after, (after - before) / served, end.pid)
            for kind, before, after, path in end.grown
            # Frozen at the start, a container was not seen there: its growth is unknown.
            if not (start.frozen and before == 0)
        ]
        if start.frozen:  # and every type's count at the start is short of them
            retained += _enough(found)
            continue
        # The start's census counts every object the collector tracks (reached or not);
        # the end's, after a full collection, those the roots reach, and apart those
        # nothing refers to: growth is measured from the start's whole count, never
        # more than it was.
        was = {
            name: start.types.get(name, 0) + start.orphans.get(name, 0)
            for name in {*start.types, *start.orphans}
        }
        found += _grown("native", was, end.orphans, served, end.pid)
        found += _grown("type", was, end.types, served, end.pid)
        retained += _enough(found)
    order = {"container": 0, "native": 1, "type": 2}
    retained.sort(key=lambda r: (order[r.kind], -(r.after - r.before), r.pid))
    censuses = tuple(
        Census(
            pid=c.pid,
            label=c.label,
            t=round(c.t - load_start, 3),
            objects=c.objects,
            seconds=round(c.seconds, 4),
            truncated=c.truncated,
        )
        for c in sorted([*starts, *ends], key=lambda c: (c.pid != main_pid, c.pid, c.t))
    )
    return Retention(tuple(retained), censuses, round(main_requests, 1), tuple(problems))


def _grown(
    kind: str, before: Mapping[str, int], after: Mapping[str, int], served: float, pid: int
) -> list[Retained]:
    return [
        Retained(
            kind,
            name,
            name,
            before.get(name, 0),
            count,
            (count - before.get(name, 0)) / served,
            pid,
        )
        for name, count in after.items()
        if count > before.get(name, 0)
    ]


def _enough(found: list[Retained]) -> list[Retained]:
    """Those grown enough to name, the most grown :data:`SHOWN` of each kind."""
    kept: list[Retained] = []
    for kind in ("container", "native", "type"):
        theirs = [
            r
            for r in found
            if r.kind == kind
            and r.after - r.before >= MIN_GROWTH
            and r.per_request >= MIN_PER_REQUEST
        ]
        theirs.sort(key=lambda r: r.after - r.before, reverse=True)
        kept += theirs[:SHOWN]
    return kept
