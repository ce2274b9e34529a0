"""Garbage-collector pressure on the requests axis, from the probe's running totals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gate.model import Curve
from gate.observed import GcPressure, GcSample


def gc_pressure(
    processes: Sequence[Sequence[GcSample]], curve: Curve, load_start: float, steady: int
) -> GcPressure | None:
    """Each process's totals at the curve's points (held at the first value before a
    process's first sample and at the last after its last), summed over the processes,
    and the rates between the steady state's first point and the curve's last."""
    if not processes or not curve.points:
        return None
    at = np.array([load_start + p.t for p in curve.points], dtype=float)
    totals = np.zeros((3, len(at)), dtype=float)
    for samples in processes:
        t = np.array([s.t for s in samples], dtype=float)
        for row, name in enumerate(("collections", "full", "seconds")):
            values = np.array([getattr(s, name) for s in samples], dtype=float)
            totals[row] += np.interp(at, t, values)
    collections, full, seconds = totals
    served = curve.points[-1].requests - curve.points[steady].requests
    per = 1.0 / served if served > 0 else 0.0
    return GcPressure(
        collections=tuple(int(v) for v in np.rint(collections)),
        full=tuple(int(v) for v in np.rint(full)),
        seconds=tuple(round(float(v), 6) for v in seconds),
        collections_per_request=round(float(collections[-1] - collections[steady]) * per, 4),
        full_per_1000_requests=round(float(full[-1] - full[steady]) * per * 1000, 3),
        seconds_per_request=float(seconds[-1] - seconds[steady]) * per,
    )
