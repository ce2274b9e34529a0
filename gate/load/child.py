"""The load process, ``python -m gate.load CONFIG_JSON``, and what all of memgate's
Locust processes share: the timeline, the locustfile read under guard (its exceptions
become ``error`` events), the 100 ms sampling loop and the ``end`` event. :func:`drive`
is the load from this one process; :mod:`gate.load.master` drives a distributed one.
Locust and gevent are imported inside the functions: importing this module patches
nothing."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from gate.errors import one_line
from gate.load.process import LoadConfig
from gate.model import FAILURE_REASONS

SAMPLE_INTERVAL_S = 0.1
HOPELESS_AFTER = 50
"""Requests after which a load whose every request failed stops (``failing``)."""
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
MISSED_KEY = "memgate_missed"
"""Key a worker adds to its stats reports: the requests that missed the services since
its last report, by ``host:port`` (or :data:`NO_URL`)."""
NO_URL = "an unknown place (no URL)"
"""Where a request whose event gives no URL went, as the refusal names it."""


class Destinations:
    """Where the requests went (Locust's request events carry each one's URL): every one
    must reach a service of the scenario, on loopback, at one of its ports; the others
    are counted by ``host:port``. A locustfile that sends absolute URLs elsewhere would
    otherwise be measured as the service's load. A request whose event gives no URL (a
    custom ``User`` that fires the events itself) or one that does not parse cannot be
    shown to reach the service: it is counted apart, as :data:`NO_URL`."""

    def __init__(self, config: LoadConfig) -> None:
        target = urllib.parse.urlsplit(config.host)
        self.ports = {target.port or _DEFAULT_PORTS.get(target.scheme, 0)}
        self.ports |= set(config.service_ports)
        self.missed: collections.Counter[str] = collections.Counter()

    def listen(self, env: Any) -> None:
        env.events.request.add_listener(self.on_request)

    def on_request(self, url: str | None = None, **_: Any) -> None:
        if not url or not isinstance(url, str):
            self.missed[NO_URL] += 1
            return
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        except ValueError:
            self.missed[NO_URL] += 1
            return
        if not parts.hostname:
            return  # a relative URL goes to the host Locust was given
        if parts.hostname in LOOPBACK_NAMES and port in self.ports:
            return
        self.missed[f"{parts.hostname}:{port}"] += 1

    def add(self, counts: Any) -> None:
        """Counts a worker reported (ignored unless they are counts by place)."""
        if isinstance(counts, dict):
            for where, n in counts.items():
                if isinstance(where, str) and isinstance(n, int) and n > 0:
                    self.missed[where] += n


_DEFAULT_PORTS = {"http": 80, "https": 443}


class LoadFailure(Exception):
    """A reason of memgate's own for stopping the load, shown as it is."""


Emit = Callable[..., None]
Drive = Callable[[LoadConfig, Any, Emit], int]
"""Runs the load on a Locust environment, writing the timeline; the exit code."""


def main(config: LoadConfig, drive: Drive) -> int:
    """Read the locustfile, then ``drive`` the load on it: :func:`drive` here, or the
    distributed master's."""
    with open_timeline(config) as emit:
        return guarded(config, emit, "", lambda env: drive(config, env, emit))


@contextlib.contextmanager
def open_timeline(config: LoadConfig) -> Iterator[Emit]:
    # Line-buffered appends: the master and its workers may all write an ``error`` line.
    with open(config.timeline_path, "a", buffering=1) as lines:

        def emit(event: str, t: float | None = None, **fields: Any) -> None:
            line = {"event": event, "t": time.time() if t is None else t, **fields}
            lines.write(json.dumps(line) + "\n")

        yield emit


def guarded(config: LoadConfig, emit: Emit, prefix: str, run: Callable[[Any], int]) -> int:
    """Read the locustfile, then ``run`` the load on its environment. Any exception
    becomes an ``error`` event (kind ``input`` while the locustfile is read, ``run``
    after), its message prefixed with ``prefix``, before it ends the process."""
    stage = "input"
    try:
        environment = _prepare(config)
        stage = "run"
        return run(environment)
    except BaseException as exc:  # the user's locustfile may raise anything, or exit
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = str(exc) if isinstance(exc, LoadFailure) else f"{type(exc).__name__}: {exc}"
        message = (text.strip().splitlines() or [type(exc).__name__])[0]
        emit("error", message=prefix + message, kind=stage)
        raise


def _prepare(config: LoadConfig) -> Any:
    """Import the locustfile and pick its User classes: a failure here is bad input."""
    import locust
    from locust.env import Environment
    from locust.util.load_locustfile import load_locustfile

    # (docstring, users, shapes) before Locust 2.36, (users, shapes) since.
    *_, available, shapes = load_locustfile(config.locustfile)
    if len(shapes) > 1:
        names = ", ".join(sorted(type(shape).__name__ for shape in shapes))
        raise LookupError(
            f"{len(shapes)} LoadTestShape classes in {config.locustfile} ({names}): keep one"
        )
    if config.user_classes:
        unknown = [name for name in config.user_classes if name not in available]
        if unknown:
            raise LookupError(f"no User class {unknown[0]!r} in {config.locustfile}")
        classes = [available[name] for name in config.user_classes]
    else:
        classes = list(available.values())
    if not classes:
        raise LookupError(f"no User class in {config.locustfile}")

    return Environment(
        user_classes=classes,
        host=config.host,
        events=locust.events,
        tags=config.tags or None,
        exclude_tags=config.exclude_tags or None,
        shape_class=shapes[0] if shapes else None,
        parsed_options=_parsed_options(config),
    )


def _parsed_options(config: LoadConfig) -> Any:
    """The options Locust's command line would give the locustfile (its own, added in
    ``init_command_line_parser``, with the scenario's values or their defaults), as
    ``environment.parsed_options``: a locustfile that reads them runs as under
    ``locust``. A value it does not declare, or cannot take, is bad input."""
    import io

    from locust.argument_parser import parse_options

    args = ["-f", config.locustfile, "--host", config.host, "--headless"]
    args += ["--users", str(config.users), "--spawn-rate", str(config.spawn_rate)]
    if config.tags:
        args += ["--tags", *config.tags]
    if config.exclude_tags:
        args += ["--exclude-tags", *config.exclude_tags]
    for name, value in config.options.items():
        if value is True:
            args.append(f"--{name}")
        elif value is not False:
            args.append(f"--{name}={value}")
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parse_options(args=args)
    except SystemExit:
        # The error's own line: argparse may add a guess after it ("Did you mean
        # '--version'?", one of Locust's options) that names no option of the scenario's.
        errors = [line for line in said.getvalue().splitlines() if ": error: " in line]
        reason = errors[-1].split(": error: ", 1)[-1] if errors else "not understood"
        if reason.startswith("unrecognized arguments"):
            reason += " (the locustfile declares no such option)"
        raise LoadFailure(f"[load] options: {reason}") from None


def drive(config: LoadConfig, env: Any, emit: Emit) -> int:
    """The load from this one process: Locust's local runner."""
    runner = env.create_local_runner()
    destinations = Destinations(config)
    destinations.listen(env)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    started = time.monotonic()
    emit("start", requests=0, failures=0)
    if env.shape_class is not None:
        runner.start_shape()  # the shape gives the users and the spawn rate
    else:
        runner.start(config.users, spawn_rate=config.spawn_rate)
    stop_reason = follow(config, env, emit, started)
    stopped_at = time.time()
    runner.quit()  # its users stop, and the service closes their connections
    # The end is when the users were told to stop, as in the master: what the service
    # frees as their connections close is no part of the load's curve.
    emit_end(env, emit, stop_reason, t=stopped_at, missed=dict(destinations.missed))
    return 0


def _no_check() -> None:
    pass


def follow(
    config: LoadConfig, env: Any, emit: Emit, started: float, check: Callable[[], None] = _no_check
) -> str:
    """Sample the (aggregated) stats every 100 ms until a bound is reached; its name.
    The samples written thin out as the load goes on (:class:`gate.spacing.Spacing`)."""
    import gevent

    from gate.spacing import Spacing

    kept = Spacing(SAMPLE_INTERVAL_S)  # bounds checked every sample, fewer written
    measure_from: tuple[float, int] | None = None
    if config.warmup_requests == 0:
        measure_from = (started, 0)
        emit("warmup_done", requests=0)
    while True:
        gevent.sleep(SAMPLE_INTERVAL_S)
        check()
        now = time.monotonic()
        done = env.stats.num_requests
        if kept.keep(now):
            emit("sample", requests=done, failures=env.stats.num_failures)
        if measure_from is None and done >= config.warmup_requests:
            measure_from = (now, done)
            emit("warmup_done", requests=done)
        if measure_from is not None:
            if (
                config.requests is not None
                and done - measure_from[1] >= config.requests
                and (not config.enough_path or os.path.exists(config.enough_path))
            ):
                return "requests"
            if config.duration is not None and now - measure_from[0] >= config.duration:
                return "duration"
        if done >= HOPELESS_AFTER and env.stats.num_failures >= done:
            return "failing"  # every request so far failed: waiting longer measures nothing
        if now - started >= config.time_limit:
            return "time_limit"
        if config.stop_path and os.path.exists(config.stop_path):
            return "leak"  # memgate saw a certain leak: a soak ends early
        if env.shape_class is not None and getattr(env.runner, "state", "") == "stopped":
            return "shape"  # the locustfile's LoadTestShape ended the load


def emit_end(env: Any, emit: Emit, stop_reason: str, **extra: Any) -> None:
    """The ``end`` event: the totals and each endpoint's stats, with ``extra`` fields."""
    endpoints = [
        {
            "method": entry.method or "",
            "name": entry.name,
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "median_ms": float(entry.median_response_time or 0),
            "p95_ms": float(entry.get_response_time_percentile(0.95) or 0),
        }
        for entry in sorted(env.stats.entries.values(), key=lambda e: (e.name, e.method or ""))
    ]
    reasons = sorted(env.stats.errors.values(), key=lambda e: (-e.occurrences, e.name))
    failure_reasons = [
        {
            "method": error.method or "",
            "name": error.name,
            "error": one_line(error.parse_error(error.error)),  # a repr, addresses cut
            "occurrences": error.occurrences,
        }
        for error in reasons[:FAILURE_REASONS]
    ]
    emit(
        "end",
        requests=env.stats.num_requests,
        failures=env.stats.num_failures,
        stop_reason=stop_reason,
        endpoints=endpoints,
        failure_reasons=failure_reasons,
        **extra,
    )
