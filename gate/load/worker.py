"""A Locust worker of a distributed load, ``python -m gate.load --worker INDEX PORT PID
CONFIG_JSON``: it connects to its master on 127.0.0.1, reports to it every 0.1 s, and
ends with it."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from gate.load.child import MISSED_KEY, Destinations, guarded, open_timeline
from gate.load.master import LOOPBACK, WORKER_TAG
from gate.load.process import LoadConfig

WORKER_REPORT_INTERVAL_S = 0.1
"""How often a Locust worker sends its stats to the master (Locust's own default is 3 s):
the master's counts, hence the timeline's, lag the requests served by about this much."""


def main(config: LoadConfig, index: int, master_port: int, master_pid: int) -> int:
    """A Locust worker of a distributed load (``python -m gate.load --worker ...``)."""
    _die_with_parent()
    if os.getppid() != master_pid:
        return 3  # the master ended before this worker could follow it
    with open_timeline(config) as emit:
        prefix = f"Locust worker {index}: "
        return guarded(
            config, emit, prefix, lambda env: _work(config, env, index, master_port, master_pid)
        )


def _work(config: LoadConfig, env: Any, index: int, master_port: int, master_pid: int) -> int:
    import gevent
    import locust.runners

    # Locust's workers report every 3 s; the timeline samples every 0.1 s.
    locust.runners.WORKER_REPORT_INTERVAL = WORKER_REPORT_INTERVAL_S
    gevent.spawn(_end_with, master_pid)

    destinations = Destinations(config)
    destinations.listen(env)

    def tag(client_id: str, data: dict[str, Any]) -> None:
        data[WORKER_TAG] = index
        data[MISSED_KEY] = dict(destinations.missed)  # since the last report
        destinations.missed.clear()

    env.events.report_to_master.add_listener(tag)
    runner = env.create_worker_runner(master_host=LOOPBACK, master_port=master_port)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.greenlet.join()  # until the master says quit
    runner.client.close(linger=0)
    return 0


def _die_with_parent() -> None:
    """Have Linux kill this process when its parent (the master) ends, however it ends
    and whatever this process is doing then (a locustfile's import may hang)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _end_with(master_pid: int) -> None:
    """End this worker as soon as its master is gone (killed, crashed), also where
    :func:`_die_with_parent` cannot, or when the master ended before it took effect."""
    import gevent

    while os.getppid() == master_pid:
        gevent.sleep(0.2)
    os._exit(3)
