"""A distributed load's master: the load process becomes Locust's master on 127.0.0.1
and starts its workers (:mod:`gate.load.worker`) in processes of its own."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Any

from gate.load.child import MISSED_KEY, Destinations, Emit, LoadFailure, emit_end, follow
from gate.load.process import LoadConfig
from gate.service.exits import signal_name

LOOPBACK = "127.0.0.1"
"""The only address a distributed load's master listens on."""
WORKER_CONNECT_TIMEOUT_S = 20.0
"""How long the workers may take to start and connect (at most the load's time limit)."""
WORKER_STOP_TIMEOUT_S = 5.0
"""How long the workers may take to quit when told to, before they are killed."""
WORKER_TAG = "memgate_worker"
"""Key a worker adds to its stats reports: its index, to count requests per worker."""


def drive(config: LoadConfig, env: Any, emit: Emit) -> int:
    """This process becomes Locust's master on 127.0.0.1 (a port the system picks) and
    starts ``config.processes`` workers, ``python -m gate.load --worker``; the timeline
    follows the master's stats, which sum what the workers report."""
    import gevent

    runner = env.create_master_runner(master_bind_host=LOOPBACK, master_bind_port=0)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    by_worker: dict[int, int] = {}
    destinations = Destinations(config)

    def count(client_id: str, data: dict[str, Any]) -> None:
        index = data.get(WORKER_TAG)
        if isinstance(index, int):
            done = data.get("stats_total", {}).get("num_requests", 0)
            by_worker[index] = by_worker.get(index, 0) + done
        destinations.add(data.get(MISSED_KEY))

    env.events.worker_report.add_listener(count)
    started = time.monotonic()
    workers = _Workers(config, runner.server.port)
    try:
        workers.start()
        connect_by = started + min(WORKER_CONNECT_TIMEOUT_S, config.time_limit)
        while len(runner.clients.ready) < config.processes:
            workers.check("before connecting to the master")
            if time.monotonic() >= connect_by:
                raise LoadFailure(
                    f"only {len(runner.clients.ready)} of {config.processes} Locust workers"
                    f" connected to the master within {connect_by - started:g} s"
                )
            gevent.sleep(0.05)
        emit("start", requests=0, failures=0)
        if env.shape_class is not None:  # the shape gives the users and the spawn rate
            spawner = gevent.spawn(runner.start_shape)
        else:
            spawner = gevent.spawn(runner.start, config.users, config.spawn_rate)
        stop_reason = follow(config, env, emit, started, lambda: workers.check("under load"))
        stopped_at = time.time()
        spawner.kill()
        runner.quit()  # tells the workers to quit; waits 0.5 s for their last reports
        workers.wait(WORKER_STOP_TIMEOUT_S)
    finally:
        workers.kill()
        runner.server.close(linger=0)
    # The end is when the workers were told to stop; their last reports came after.
    emit_end(
        env,
        emit,
        stop_reason,
        t=stopped_at,
        workers=[{"worker": i, "requests": by_worker.get(i, 0)} for i in workers.indexes()],
        missed=dict(destinations.missed),
    )
    return 0


class _Workers:
    """The master's worker processes: in its process group, so that whoever kills the
    group (the parent's :meth:`LoadProcess.kill`) kills them too."""

    def __init__(self, config: LoadConfig, master_port: int) -> None:
        self.config = config
        self.master_port = master_port
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MEMGATE_PARENT": str(os.getpid())}
        blob = json.dumps(dataclasses.asdict(self.config))
        for index in range(1, self.config.processes + 1):
            command = [sys.executable, "-m", "gate.load", "--worker", str(index)]
            command += [str(self.master_port), str(os.getpid()), blob]
            try:
                self.procs[index] = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)
            except OSError as exc:
                raise LoadFailure(f"could not start Locust worker {index}: {exc}") from None

    def indexes(self) -> list[int]:
        return sorted(self.procs)

    def check(self, when: str) -> None:
        """:class:`LoadFailure` if a worker has ended: the load would not be the one asked."""
        for index in self.indexes():
            code = self.procs[index].poll()
            if code is not None:
                how = f"code {code}" if code >= 0 else signal_name(-code)
                raise LoadFailure(f"Locust worker {index} exited with {how} {when}")

    def wait(self, timeout: float) -> None:
        """Let the workers end by themselves (they were told to quit), for a while."""
        import gevent

        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if all(proc.poll() is not None for proc in self.procs.values()):
                return
            gevent.sleep(0.05)
        for index in self.indexes():
            if self.procs[index].poll() is None:
                print(f"memgate: Locust worker {index} did not quit in {timeout:g} s: killed")

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
