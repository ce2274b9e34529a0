"""The Locust load: the only package that imports locust, and only in its own processes.

``import locust`` monkey-patches the whole process with gevent, so the load runs in a
process of its own. :class:`LoadProcess` (parent side, :mod:`gate.load.process`) starts
``python -m gate.load CONFIG_JSON``; that load process (:mod:`gate.load.child`) drives
the user's plain locustfile with Locust's library API and appends its timeline, as JSON
lines, to a file the parent reads for progress and for the curve's x-axis.

Timeline events (one JSON object a line, ``t`` in seconds since the epoch): ``start``
and ``sample`` (``requests``, ``failures``: cumulative; a sample every 100 ms);
``warmup_done`` (``requests``); ``end`` (``requests``, ``failures``, ``stop_reason``,
``endpoints``); ``error`` (``message``, ``kind``: ``input`` for the locustfile, ``run``
for the rest).

With ``processes`` above 1 the load process is Locust's master (:mod:`gate.load.master`)
and starts that many worker processes (:mod:`gate.load.worker`, ``python -m gate.load
--worker INDEX PORT PID CONFIG_JSON``, in its process group) that connect to it on
127.0.0.1. The timeline is the same, from the master's stats (the workers' reports
summed); ``end`` also lists ``workers`` (``worker``, ``requests``). A worker writes only
``error`` events, its message starting ``Locust worker N:``.

Importing this package (or any of its modules) imports neither locust nor gevent: the
child-side modules import them inside their functions.
"""

from __future__ import annotations

from gate.load.process import (
    DEADLINE_GRACE_S,
    LoadConfig,
    LoadOutcome,
    LoadProcess,
    LoadProgress,
)

__all__ = ["DEADLINE_GRACE_S", "LoadConfig", "LoadOutcome", "LoadProcess", "LoadProgress"]
