"""When to poll a process read live as its heap right after a full collection.

memgate's agent writes, in ``full.PID.jsonl``, that a full collection comes soon, then
that it ended (with the marker it allocated after it, for the collections it forced).
The reading thread polls that process once the collection's frees have reached memgate
(the stream shows the marker, or its socket's backlog is small, or enough time went
by), and starts no other poll meanwhile: a reading behind the service must not cost the
curve its points. The state of each process's collection is kept on its
:class:`gate.recording.live.process.LiveProcess`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from gate.agent.memgate_agent import FULL_FILE
from gate.recording.live.process import RELIEF, LiveProcess
from gate.tcp_table import backlogs

RETAINED_WATCH_S = 0.01
"""How often the agent's files of full collections are looked at: the heap right after
one is read within about this long of its settling."""
RETAINED_QUIET_S = 0.4
"""How long after the agent said a collection comes soon, or after it came, no other
poll starts, at most: a reading behind the service must not cost the curve its points."""
RETAINED_SETTLED_BYTES = 64 * 1024
"""A full collection's poll waits while more than this many bytes of records wait unread
in the stream's socket (the collection's frees may be among them)..."""
RETAINED_WAIT_S = 0.25
"""...but no longer than this."""
RETAINED_SETTLE_S = 0.05
"""...and at least this long, marker or not (the first try; a collection the service
made itself has no marker after it): the tracker sends the collection's frees in blocks
as they fill, and memray's reader in memgate takes them in after the socket."""
RETAINED_GIVE_UP_S = 3.0
"""How long a full collection's poll is tried again while the stream has not shown the
agent's marker (memgate's reading is behind): then that collection has no point."""


class FullCollectionPolls:
    """Follows the agent's files of full collections in ``folder`` and says when each
    process's poll right after one is due; counts the collections never read (under
    ``lock``, which guards the reader's figures)."""

    def __init__(self, folder: Path, lock: threading.Lock) -> None:
        self.folder = folder
        self._lock = lock
        self.missed = 0
        """Full collections whose heap was not read."""

    def watch(self, processes: Sequence[LiveProcess], now: float) -> None:
        """Read what the agent wrote of each process's full collections since the last
        look: one that ended makes that process's poll due (:meth:`due`)."""
        for process in processes:
            if process.ended:
                continue
            path = self.folder / FULL_FILE.format(pid=process.pid)
            try:
                with open(path, "rb") as source:
                    source.seek(process.collections_read)
                    text = source.read()
            except OSError:
                continue  # none yet, or [profile] retained_heap = false
            whole = text.rfind(b"\n") + 1  # a line still being written waits
            if not whole:
                continue
            process.collections_read += whole
            for line in text[:whole].splitlines():
                try:
                    said = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(said, dict):
                    continue
                if "t" in said:  # a collection ended: the newest is read
                    if process.retained_due is not None:  # the one before was never read
                        with self._lock:
                            self.missed += 1
                    process.retained_due = now
                    mark = said.get("mark")
                    process.retained_mark = mark if isinstance(mark, int) else None
                elif said.get("soon"):
                    process.collecting_soon = now

    def quiet(self, processes: Sequence[LiveProcess], now: float) -> bool:
        """Whether a full collection is about to come (said at most ``RETAINED_QUIET_S``
        ago), or came and waits for its poll: no other poll starts."""
        return any(
            (p.retained_due is not None and now - p.retained_due < RETAINED_QUIET_S)
            or (p.collecting_soon is not None and now - p.collecting_soon < RETAINED_QUIET_S)
            for p in processes
            if not p.ended
        )

    def due(self, process: LiveProcess, now: float) -> bool:
        """Whether a full collection of ``process`` waits for its poll and the stream has
        caught up with it (or waited long enough)."""
        if process.retained_due is None:
            return False
        if now - process.retained_due < RETAINED_SETTLE_S:
            return False
        if process.retained_mark is not None:  # its poll says whether it came through
            return now >= process.retained_retry
        if now - process.retained_due >= RETAINED_WAIT_S or not process.port:
            return True
        return backlogs().get(process.port, 0) <= RETAINED_SETTLED_BYTES

    def polled(self, process: LiveProcess, kept: bool, took: float, now: float) -> None:
        """``process`` was polled as its heap right after its last full collection
        (``kept``: the stream showed the agent's marker, in ``took`` seconds). If not,
        it is tried again as an ordinary poll would be (a reading behind the service
        must not be held further back by the tries), and no later than
        ``RETAINED_GIVE_UP_S`` after the collection (then it has no point)."""
        due = process.retained_due
        assert due is not None
        process.retained_retry = time.monotonic() + max(RELIEF * took, RETAINED_SETTLE_S)
        if kept or process.ended or now - due >= RETAINED_GIVE_UP_S:
            if not kept and not process.ended:
                with self._lock:
                    self.missed += 1
            process.retained_due = process.collecting_soon = process.retained_mark = None
