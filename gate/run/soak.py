"""A soak's watch: the heap looked at while the load runs, and the load stopped as soon
as a leak is certain (``load.stop_on_leak``; the rule is ``gate.analysis.sequential``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gate.analysis.curve import requests_at
from gate.analysis.sequential import Look, look_at
from gate.load import LoadProcess
from gate.service.process import ServiceProcess

LOOK_EVERY_S = 10.0
"""Seconds between looks: each spends a share of the false-alarm budget, so looking more
often makes each look stricter."""


class SoakWatch:
    """Looks at each live service's heap every :data:`LOOK_EVERY_S` seconds of the load."""

    def __init__(self, services: Sequence[ServiceProcess], load: LoadProcess) -> None:
        self.services = [s for s in services if s.live]
        self.load = load
        self.looks: dict[str, list[Look]] = {s.who: [] for s in self.services}
        self.said = ""
        """The growth per request so far, for the progress line."""
        self._next = time.monotonic() + LOOK_EVERY_S

    def tick(self) -> str:
        """Look if it is time; stop the load early if a leak is certain. The growth so far."""
        now = time.monotonic()
        if now < self._next:
            return self.said
        self._next = now + LOOK_EVERY_S  # never looks in a burst to catch up
        samples, warmup_done = self.load.timeline()
        if warmup_done is None or len(samples) < 2:
            return self.said
        said = []
        for service in self.services:
            times, heap = service.heap_so_far()
            if len(times) < 2:
                continue
            looks = self.looks[service.who]
            requests = requests_at(times, samples)
            look = look_at(len(looks) + 1, requests.tolist(), heap, warmup_done)
            if look.trend is None:
                continue  # too early to tell: no share of the false-alarm budget spent
            looks.append(look)
            if look.trend is not None:
                t = look.trend
                name = f"{service.who}: " if len(self.services) > 1 else ""
                said.append(f"{name}heap {t.slope:+,.1f} B/request [{t.low:,.1f}, {t.high:,.1f}]")
            if look.certain:
                self.load.stop_early()
        self.said = "; ".join(said)
        return self.said
