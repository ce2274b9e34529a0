"""Counts other than memory that leak with it: open files, sockets, threads, processes.

psutil samples the service's process tree from outside every 100 ms; each count is put
on the requests axis and tested for growth over the steady state like the heap is
(block medians, Theil-Sen, Mann-Kendall). A count grows when the trend is sure and it
gained at least the resource's minimum: a connection pool opening its sockets once, or
a worker thread started at the first request, gain a handful and stop.
"""

from __future__ import annotations

from collections.abc import Sequence

from gate.analysis.shape import ALPHA
from gate.analysis.trend import TooFewPoints, blocks, trend
from gate.model import ProcessSample
from gate.observed import ResourceGrowth

MIN_GAIN = {"fds": 8, "sockets": 8, "threads": 4, "processes": 2}
"""How many more a resource must hold at the end of the steady state than at its start,
on the fitted line, to be growing: fewer is churn (connections opened and closed)."""
LABELS = {
    "fds": "open file descriptors",
    "sockets": "open sockets",
    "threads": "threads",
    "processes": "processes",
}


def resource_growth(
    samples: Sequence[ProcessSample], steady_requests: float
) -> tuple[ResourceGrowth, ...]:
    """Each resource's growth over the samples at or after ``steady_requests``."""
    steady = [s for s in samples if s.requests >= steady_requests]
    if not steady:
        return ()
    x = [s.requests for s in steady]
    out = []
    for name, minimum in MIN_GAIN.items():
        y = [getattr(s, name) for s in steady]
        try:
            found = trend(*blocks(x, y))
        except TooFewPoints:
            found = None
        grows = (
            found is not None
            and found.p_value < ALPHA
            and found.low > 0
            and found.growth >= minimum
        )
        out.append(ResourceGrowth(name, y[0], y[-1], found, grows))
    return tuple(out)
