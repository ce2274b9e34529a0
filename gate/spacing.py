"""Which samples of a stream to keep, so that a soak of hours keeps a few thousand.

Samples are taken every ``interval_s`` (the load's requests, the service's process tree,
its garbage collections); :class:`Spacing` keeps the first ``per_doubling`` of them, the
next ``per_doubling`` twice as far apart, and so on. What is kept grows with the
logarithm of the run's length, not with the length: at 0.1 s and 1,000 per doubling, a
minute keeps 600 samples, an hour about 5,300 and ten hours about 8,600, while the
curve's live points are thinned to a fixed number (``gate.recording.live``). The agent inside the
service keeps its garbage-collector counts the same way with its own copy (it imports
nothing of memgate's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

PER_DOUBLING = 1000
"""Samples kept at each spacing before it doubles."""


class Spacing:
    """Says whether a sample taken at time ``t`` is kept (times only increase)."""

    def __init__(self, interval_s: float, per_doubling: int = PER_DOUBLING) -> None:
        if not interval_s > 0 or per_doubling < 1:
            raise ValueError("need interval_s > 0 and per_doubling >= 1")
        self.interval_s = interval_s
        """The spacing of the samples kept now."""
        self.per_doubling = per_doubling
        self.kept = 0
        self._due = float("-inf")

    def keep(self, t: float) -> bool:
        """Whether to keep the sample taken at ``t``: the first always; then one at
        least the current spacing after the last kept (less a tenth, for the jitter of
        a sampler that sleeps ``interval_s`` between samples)."""
        if t < self._due:
            return False
        self.kept += 1
        if self.kept % self.per_doubling == 0:
            self.interval_s *= 2
        self._due = t + self.interval_s * 0.9
        return True


def thin(items: Sequence[T], most: int) -> list[T]:
    """At most ``most`` items, evenly spread, keeping the first and the last."""
    if len(items) <= most:
        return list(items)
    step = (len(items) - 1) / (most - 1)
    return [items[round(i * step)] for i in range(most)]
