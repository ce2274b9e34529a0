"""What the heap sampler holds, for memgate's agent when it samples (``"capture":
"sampled"``): loaded by path, as the agent is, only then. The standard library and the
``memgate_sampler`` extension (``sampler/`` in memgate's repository) only.

The sampler (started here, before the service's code runs) samples one allocation of
the Python allocators every ``rate`` bytes on average and keeps, per stack, the live
bytes its samples stand for. This writes that to ``samples.<pid>.<start ns>.jsonl``:
``{"frames": {"ID": [function, file, line]}}`` and ``{"stacks": {"ID": [frame ID, ...]}}``
for the frames and stacks new since the last line (innermost frame first), then
``{"t": time, "live": [[stack ID, bytes], ...]}``, every ``SAMPLES_INTERVAL_S`` and right
after each of the agent's full collections (with the time of its line in
``full.<pid>.jsonl``)."""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from typing import Any

SAMPLES_FILE = "samples.{pid}.{ns}.jsonl"
SAMPLES_INTERVAL_S = 0.5
SAMPLES_PER_DOUBLING = 1000
SAMPLES_MAX_INTERVAL_S = 4.0


class Samples:
    """The sampler's live set, written to a file of this process's. The extension makes
    and writes each line without letting go of the GIL and without allocating: no lock
    is needed, and nothing of a line is ever in the heap memgate counts."""

    def __init__(self, folder: str, rate: float) -> None:
        self.folder = folder
        self.rate = rate
        self._sampler: Any = None
        self.library = ""
        """The extension's file: the heap's counters read pymalloc's statistics through it."""
        self._fd: int | None = None

    def start(self) -> None:
        """Start sampling (``ImportError`` without the extension), and open the file."""
        sampler = importlib.import_module("memgate_sampler")
        sampler.start(rate=self.rate)
        self._sampler = sampler
        self.library = str(sampler.__file__)
        self._open()

    def forked(self, follow: bool) -> None:
        """In a forked process, before any thread starts: the parent's file is let go of;
        ``follow`` (``follow_fork``), a file of its own, every frame and stack written
        again (its tables are its own copy), its own samples drawn."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if follow:
            self._sampler.rewrite()
            self._open()

    def _open(self) -> None:
        name = SAMPLES_FILE.format(pid=os.getpid(), ns=time.time_ns())
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(os.path.join(self.folder, name), flags, 0o644)

    def write(self, t: float | None = None) -> None:
        """One line of what is live now (stamped ``t``, else now), after the frames and
        stacks it names that the file has not had yet: made and written by the extension,
        which allocates nothing. (A thread's freed chunks stay in its cache of malloc's,
        which malloc's statistics count in use: lines made in Python here read as 9-16
        B/request of growth in 4 of 4 clean demo runs, flat made in C.)"""
        if self._fd is not None:
            self._sampler.write(self._fd, time.time() if t is None else t)

    def forever(self) -> None:
        """A line every ``SAMPLES_INTERVAL_S``, doubled every ``SAMPLES_PER_DOUBLING``
        lines (a soak's file grows as slowly as the agent's other files); this thread's
        own allocations are not sampled."""
        self._sampler.quiet(True)
        interval, written = SAMPLES_INTERVAL_S, 0
        while True:
            try:
                self.write()
            except (OSError, ValueError):
                return  # memgate reads what was written
            written += 1
            if written % SAMPLES_PER_DOUBLING == 0:
                interval = min(2 * interval, SAMPLES_MAX_INTERVAL_S)
            time.sleep(interval)
