"""Refusals: a run that did not give something to measure is a :class:`RunError`, never
a result (no successful requests or mostly failed ones, a load cut by its time limit, a
service that died or had to be killed, work done in processes memray did not profile)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gate._files import last_line
from gate.errors import RunError
from gate.layout import LOAD_LOG
from gate.load import LoadOutcome
from gate.model import LoadSample
from gate.scenario import Scenario
from gate.service.exits import exit_text
from gate.service.process import StopInfo
from gate.service.tree import RawProcessSample

MOST_FAILED = 0.5
"""A load where more than this share of the measured requests (after warm-up) failed is
refused: its memory is that of errors (or of no service at all: connection refused), not
of the service's work. A scenario's endpoints answer successfully; a status the service is
meant to answer (a 404 tested on purpose) is marked a success in the locustfile."""


def check_load(outcome: LoadOutcome, scenario: Scenario, out_dir: Path) -> None:
    """Refuse a load that did not give something to measure: :class:`RunError`."""
    last = outcome.samples[-1] if outcome.samples else LoadSample(0.0, 0, 0)
    if outcome.missed:
        total = sum(outcome.missed.values())
        places = ", ".join(f"{n:,} to {where}" for where, n in sorted(outcome.missed.items()))
        raise RunError(
            f"{total:,} of {last.requests:,} requests did not go to the service under test"
            f" ({places}): every request of the load must reach it (see the locustfile's"
            " URLs)"
        )
    if last.requests - last.failures <= 0:
        early = ", stopped early" if outcome.stop_reason == "failing" else ""
        raise RunError(
            f"load produced no successful requests ({last.requests} sent, all failed{early}"
            f"{_most_often(outcome)}; see {out_dir / LOAD_LOG})"
        )
    spec = scenario.load
    if outcome.warmup_done_at is None:
        raise RunError(
            f"load completed only {last.requests} of {spec.warmup_requests}"
            f" warm-up requests within the {spec.time_limit:g} s time limit"
        )
    warm = _sample_at(outcome.samples, outcome.warmup_done_at)
    measured = last.requests - warm.requests
    if (last.requests - last.failures) - (warm.requests - warm.failures) <= 0:
        raise RunError(
            f"no successful requests after warm-up ({measured} sent, all failed"
            f"{_most_often(outcome)}; see {out_dir / LOAD_LOG})"
        )
    failed = last.failures - warm.failures
    if failed > MOST_FAILED * measured:
        raise RunError(
            f"{failed:,} of {measured:,} measured requests failed{_most_often(outcome)}:"
            " a load that mostly failed did not measure the service (see"
            f" {out_dir / LOAD_LOG})"
        )
    if outcome.stop_reason == "time_limit":
        wanted = f"{spec.requests} requests" if spec.requests else f"{spec.duration:g} s"
        raise RunError(
            f"load hit its {spec.time_limit:g} s time limit after measuring {measured}"
            f" requests, before the {wanted} asked for"
        )


def _most_often(outcome: LoadOutcome) -> str:
    """``; most often GET /items/[id]: HTTPError('404 ...') (120 times)``, or nothing."""
    if not outcome.failure_reasons:
        return ""
    top = outcome.failure_reasons[0]
    return f"; most often {top}"


def check_stop(stop: StopInfo, log: Path, who: str = "service") -> None:
    """Refuse a service that ended before it was stopped, or had to be killed."""
    if stop.signal == "none":
        raise RunError(
            f"{who} ended during the load ({exit_text(stop.returncode)})"
            f" (see {log}): {last_line(log)}"
        )
    if stop.signal == "SIGKILL":
        raise RunError(
            f"{who} ignored the stop signals and was killed (see {log}); give it a longer"
            " [service] stop_timeout if it needs one"
        )


def _sample_at(samples: tuple[LoadSample, ...], when: float) -> LoadSample:
    """The first sample at or after ``when`` (the last one if none is)."""
    return next((s for s in samples if s.t >= when), samples[-1])


def check_profiled(
    during: Sequence[RawProcessSample],
    captured: set[int],
    follow_fork: bool,
    who: str = "service",
    command: Callable[[int], str] = lambda pid: "",
) -> None:
    """Refuse a run whose service did its work in processes memray did not profile: its
    flat main process would otherwise pass whatever the workers did. ``during``: the
    process tree's samples through the load; ``captured``: the forks with a capture;
    ``command``: what a process runs, for the message (empty if unknown). A daemon the
    service started is in its tree too (the main process is its subreaper)."""
    # Per sample, not per process: workers restarted every few hundred requests each
    # live briefly, but some unprofiled worker is there all the time.
    seen: dict[int, int] = {}
    uncovered = 0
    for sample in during:
        others = [pid for pid in sample.pids[1:] if pid not in captured]
        uncovered += bool(others)
        for pid in others:
            seen[pid] = seen.get(pid, 0) + 1
    if uncovered * 2 <= len(during):
        return
    missed = sorted(seen, key=lambda pid: (-seen[pid], pid))
    listed = ", ".join(" ".join(filter(None, (str(pid), command(pid)))) for pid in missed[:5])
    if not follow_fork:
        raise RunError(
            f"the {who} ran {len(missed)} more process(es) during most of the load (pid"
            f" {listed}) that memray did not profile; set [profile] follow_fork = true for a"
            " prefork server (a program the service starts, a helper or a daemon, is not"
            " measured: run it apart)"
        )
    raise RunError(
        f"{len(missed)} process(es) of the {who} ran during most of the load without a"
        f" capture (pid {listed}): memray follows fork, not spawn or exec (uvicorn --workers"
        " spawns; gunicorn with uvicorn_worker.UvicornWorker forks)"
    )
