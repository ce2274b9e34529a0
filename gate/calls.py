"""Function-level memory tests: call a function many times under memray and measure
what it keeps per call.

The calls run in rounds. After each round the garbage collector runs and memray's
heap (bytes allocated while tracking and not yet freed) is read at that moment; the
growth per call is the trend of those readings against calls made, after the first
(warm-up) rounds. So a cache that fills once, in the warm-up, does not count, and one
that keeps filling does: unlike a check of what is left at the end, which counts both.
The sites that grew are ranked as for a service.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import dataclasses
import datetime
import gc
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from gate.analysis.sites import rank_sites
from gate.analysis.trend import blocks, trend
from gate.errors import InputError, RunError
from gate.model import Site
from gate.recording.capture_file import Capture, tracking
from gate.report.parts import growing_sites, where
from gate.shapes import Trend
from gate.units import size

SETTLE_S = 0.005
"""Pause after each round, so that memray takes a snapshot of the heap in it."""


@dataclasses.dataclass(frozen=True)
class CallsResult:
    """What repeated calls of one function kept."""

    calls_per_round: int
    rounds: int
    warmup_rounds: int
    heap: tuple[int, ...]
    """memray's heap after each round (bytes)."""
    trend: Trend
    """Growth per call over the rounds after the warm-up."""
    peak: int
    """Highest heap seen while tracking, bytes."""
    sites: tuple[Site, ...]
    """Stacks most likely keeping memory, most likely first."""

    @property
    def growth_per_call(self) -> float:
        return self.trend.slope


def measure_calls(
    fn: Callable[[], Any],
    *,
    calls: int = 100,
    rounds: int = 10,
    warmup_rounds: int = 1,
    time_limit: float | None = None,
    capture: Path,
    base: str,
    library_roots: list[str],
) -> CallsResult:
    """Call ``fn`` ``calls`` times per round for ``warmup_rounds + rounds`` rounds,
    tracked by memray into ``capture``; stopped with a :class:`RunError` once all of that
    takes more than ``time_limit`` seconds (``None``: no limit)."""
    if rounds < 6:
        raise InputError(f"rounds must be at least 6 to estimate a trend, not {rounds}")
    if calls < 1 or warmup_rounds < 0:
        raise InputError("calls must be at least 1 and warmup_rounds at least 0")
    if time_limit is not None and not (_is_number(time_limit) and time_limit > 0):
        raise InputError(
            f"time_limit must be a number of seconds above 0, or None, not {time_limit!r}"
        )
    # Round ends, kept as C doubles: storing them allocates nothing that lives on.
    marks = array.array("d", bytes(8 * (warmup_rounds + rounds + 1)))
    gc.collect()
    try:
        with tracking(capture), _stopped_after(time_limit):
            _call_rounds(fn, calls, marks)
    except _Overdue:
        done = sum(1 for mark in marks[1:] if mark)
        raise RunError(
            f"the calls did not finish within their time limit of {time_limit:g} s"
            f" (time_limit=, or pytest's --memgate-calls-time-limit):"
            f" {done} of {len(marks) - 1} rounds done"
        ) from None
    with Capture(capture) as reader:
        snapshots = reader.snapshots()
        times = [s.t for s in snapshots]
        indexes = [min(bisect.bisect_left(times, mark), len(times) - 1) for mark in marks]
        heap = tuple(snapshots[i].heap for i in indexes)
        x = [float(calls * i) for i in range(len(heap))]
        sites = rank_sites(
            ((s.stack, s.live) for s in reader.live_bytes_by_stack(indexes)),
            requests=x,
            steady_index=warmup_rounds,
            library_roots=library_roots,
            base=base,
        )
    xb, yb = blocks(x[warmup_rounds:], heap[warmup_rounds:])
    return CallsResult(
        calls_per_round=calls,
        rounds=rounds,
        warmup_rounds=warmup_rounds,
        heap=heap,
        trend=trend(xb, yb),
        peak=max(s.heap for s in snapshots),
        sites=sites,
    )


def _call_rounds(fn: Callable[[], Any], calls: int, marks: array.array[float]) -> None:
    """The rounds of calls, one per mark after the first: ``marks[0]`` is the time
    before the first call, ``marks[i]`` the time round ``i`` ended, after a collection;
    a pause on each side of a mark lets memray take a snapshot at it."""
    time.sleep(SETTLE_S)
    marks[0] = time.time()
    time.sleep(SETTLE_S)
    for done in range(1, len(marks)):
        for _ in range(calls):
            fn()
        gc.collect()
        time.sleep(SETTLE_S)
        marks[done] = time.time()
        time.sleep(SETTLE_S)


class _Overdue(BaseException):
    """Raised into the calls when their time limit is up: not an :class:`Exception`, so
    a function that catches every exception in a loop cannot swallow it."""


def _overdue(signum: int, frame: FrameType | None) -> None:
    raise _Overdue


@contextlib.contextmanager
def _stopped_after(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_Overdue` into the block once ``seconds`` have passed.

    The calls run in this process (memray's Tracker follows the process it is started
    in), so the limit is an alarm signal, as pytest-timeout's signal method: it stops
    Python code, sleeps and waits; a call stuck in C code that never checks for signals
    is stopped when it returns to Python. An alarm already set (pytest-timeout's) is set
    again afterwards, with the time it had left."""
    if seconds is None:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        raise InputError(
            "time_limit needs the main thread (it is an alarm signal): call there,"
            " or pass time_limit=None"
        )
    handler = signal.signal(signal.SIGALRM, _overdue)
    outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler or signal.SIG_DFL)  # None: one set in C
        if outer:
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), interval)


def _is_number(value: object) -> bool:
    """Whether ``value`` is a finite real number (not a bool): NaN compares false with
    everything, so a NaN limit would pass anything."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def retains(result: CallsResult, max_growth_per_call: float) -> bool:
    """Whether the calls surely keep more than ``max_growth_per_call`` bytes each: the
    growth is past it and its 95% interval lies above zero."""
    return result.trend.slope > max_growth_per_call and result.trend.low > 0


@dataclasses.dataclass(frozen=True)
class CallsOutcome:
    """A function-level test's measurement and what is wrong with it, if anything."""

    test_id: str
    result: CallsResult
    problems: tuple[str, ...]
    compared_runs: int

    def text(self) -> str:
        """The failure text: each problem, then the sites that grew."""
        r = self.result
        lines = [f"memgate: {self.test_id}: memory grows with calls"]
        lines += [f"  - {problem}" for problem in self.problems]
        head = (
            f"  heap after each round of {r.calls_per_round} calls"
            f" ({r.warmup_rounds} warm-up): {', '.join(size(h) for h in r.heap)}"
        )
        lines.append(head)
        for rank, site in enumerate(growing_sites(r.sites), start=1):
            place = where(site.frame) or "(no Python frame)"
            lines.append(
                f"  {rank}. {site.trend.slope:,.1f} B/call [{site.trend.low:,.1f},"
                f" {site.trend.high:,.1f}] at {place}"
            )
        return "\n".join(lines)


def check_calls(
    fn: Callable[[], Any],
    *,
    test_id: str,
    calls: int,
    rounds: int,
    warmup_rounds: int,
    max_growth_per_call: float,
    time_limit: float | None = None,
    capture: Path,
    baselines: Path | None,
    record: bool,
    base: str,
) -> CallsOutcome:
    """Measure ``fn``; judge it by ``max_growth_per_call`` and, with ``baselines``,
    against its history (same environment key); record it if asked and it passed."""
    from gate.calls_history import CallsRun, CallsStore
    from gate.provenance import collect, library_roots
    from gate.verdict import band

    limit = max_growth_per_call
    if not (_is_number(limit) and limit >= 0):
        raise InputError(f"max_growth_per_call must be a number of bytes, 0 or more, not {limit!r}")
    result = measure_calls(
        fn,
        calls=calls,
        rounds=rounds,
        warmup_rounds=warmup_rounds,
        time_limit=time_limit,
        capture=capture,
        base=base,
        library_roots=library_roots(),
    )
    t = result.trend
    problems = []
    if retains(result, max_growth_per_call):
        problems.append(
            f"keeps {t.slope:,.1f} B per call [{t.low:,.1f}, {t.high:,.1f}] after the warm-up,"
            f" more than {max_growth_per_call:g} B"
        )
    compared = 0
    if baselines is not None:
        store = CallsStore(baselines)
        provenance = collect(datetime.datetime.now(datetime.UTC), Path(base))
        history = store.load(test_id)
        runs = [r for r in (history.runs if history else ()) if r.env_key == provenance.env_key]
        compared = len(runs)
        if runs:
            growth = band([r.growth_per_call for r in runs], 1.0, 0.25, floor=0.0)
            if t.slope > growth.limit and t.low > growth.base:
                problems.append(
                    f"grows {t.slope:,.1f} B per call, past its history's {growth.center:,.1f}"
                    f" ± {growth.spread:,.1f} (limit {growth.limit:,.1f}, {compared} runs)"
                )
            peak = band([float(r.peak) for r in runs], 64 * 1024, 0.10)
            if result.peak > peak.limit:
                problems.append(
                    f"peak {size(result.peak)} is past its history's {size(peak.center)}"
                    f" (limit {size(peak.limit)}, {compared} runs)"
                )
        if record and not problems:
            store.record(
                test_id,
                CallsRun(
                    recorded_at=provenance.started_at,
                    commit=provenance.commit,
                    env_key=provenance.env_key,
                    growth_per_call=t.slope,
                    low=t.low,
                    high=t.high,
                    peak=result.peak,
                    calls_per_round=calls,
                    rounds=rounds,
                ),
            )
    return CallsOutcome(test_id, result, tuple(problems), compared)
