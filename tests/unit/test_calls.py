"""Function-level measurement (gate.calls) with the real memray Tracker, in-process."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from gate.calls import check_calls, measure_calls, retains
from gate.calls_history import CallsStore
from gate.errors import InputError, RunError
from gate.provenance import library_roots

KEPT: list[bytes] = []


def leak_100_bytes() -> None:
    KEPT.append(bytes(67))  # a 100-byte object (33 bytes of header), kept


@functools.lru_cache(maxsize=50)
def _square(n: int) -> list[int]:
    return [n] * 10


_numbers = itertools.cycle(range(50))


def fill_a_bounded_cache() -> None:
    _square(next(_numbers))  # 50 entries, all made in the first round


def measure(fn, tmp_path: Path, **kw):
    return measure_calls(
        fn, capture=tmp_path / "c.bin", base=str(Path.cwd()), library_roots=library_roots(), **kw
    )


def test_a_leak_of_100_bytes_per_call_is_measured_and_attributed(tmp_path: Path) -> None:
    result = measure(leak_100_bytes, tmp_path)
    assert 100 <= result.trend.low <= result.trend.slope <= result.trend.high <= 125
    assert retains(result, 1.0)
    top = result.sites[0]
    assert top.user_frame is not None and top.user_frame.function == "leak_100_bytes"
    assert len(result.heap) == 1 + result.warmup_rounds + result.rounds


def test_a_cache_filled_once_keeps_nothing_per_call(tmp_path: Path) -> None:
    result = measure(fill_a_bounded_cache, tmp_path)
    assert not retains(result, 1.0)
    assert abs(result.trend.slope) < 1.0
    assert result.heap[1] > result.heap[0]  # it did fill, in the warm-up round


def test_too_few_rounds_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="rounds must be at least 6"):
        measure(leak_100_bytes, tmp_path, rounds=3)


@pytest.mark.parametrize("limit", [float("nan"), float("inf"), -1.0, True, "1"])
def test_a_limit_that_is_no_number_of_bytes_is_bad_input(tmp_path: Path, limit: object) -> None:
    # NaN compares false with everything: taken as it is, it would pass any leak.
    with pytest.raises(InputError, match="max_growth_per_call must be a number of bytes"):
        check_calls(
            leak_100_bytes,
            test_id="t",
            calls=100,
            rounds=6,
            warmup_rounds=1,
            max_growth_per_call=limit,  # type: ignore[arg-type]
            capture=tmp_path / "c.bin",
            baselines=None,
            record=False,
            base=str(tmp_path),
        )


def never_returns() -> None:
    while True:
        # A function that swallows every exception is stopped all the same.
        with contextlib.suppress(Exception):
            time.sleep(3600)


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_a_function_that_never_returns_is_stopped_at_the_time_limit(tmp_path: Path) -> None:
    threads = native_threads()
    started = time.monotonic()
    with pytest.raises(RunError) as raised:
        measure(never_returns, tmp_path, rounds=6, time_limit=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert str(raised.value) == (
        "the calls did not finish within their time limit of 0.3 s"
        " (time_limit=, or pytest's --memgate-calls-time-limit): 0 of 7 rounds done"
    )
    # memray's tracker and its thread are stopped, and the alarm is put back as it was.
    assert native_threads() == threads
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert measure(fill_a_bounded_cache, tmp_path, rounds=6, time_limit=30).rounds == 6


def test_an_alarm_set_before_the_calls_is_set_again_after_them(tmp_path: Path) -> None:
    """pytest-timeout's signal method, say: its handler and the time it had left."""

    def outer(signum: int, frame: object) -> None:
        raise AssertionError("the outer alarm went off during the test")

    previous = signal.signal(signal.SIGALRM, outer)
    signal.setitimer(signal.ITIMER_REAL, 300)
    try:
        measure(fill_a_bounded_cache, tmp_path, rounds=6, time_limit=30)
        assert signal.getsignal(signal.SIGALRM) is outer
        assert 290 < signal.getitimer(signal.ITIMER_REAL)[0] < 300
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("limit", [0, -1.0, float("nan"), float("inf"), True, "60"])
def test_a_time_limit_that_is_no_number_of_seconds_is_bad_input(
    tmp_path: Path, limit: object
) -> None:
    with pytest.raises(InputError, match="time_limit must be a number of seconds above 0"):
        measure(leak_100_bytes, tmp_path, time_limit=limit)


def test_a_time_limit_outside_the_main_thread_is_bad_input(tmp_path: Path) -> None:
    """The limit is an alarm signal, which only the main thread receives."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            measure(leak_100_bytes, tmp_path, rounds=6, time_limit=30)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    (error,) = raised
    assert isinstance(error, InputError)
    assert str(error) == (
        "time_limit needs the main thread (it is an alarm signal): call there,"
        " or pass time_limit=None"
    )
    without = measure(fill_a_bounded_cache, tmp_path, rounds=6, time_limit=None)
    assert without.rounds == 6


def test_history_catches_a_regression_below_the_absolute_limit(tmp_path: Path) -> None:
    kept: list[bytes] = []
    size = {"n": 17}  # 50-byte objects at first

    def grows() -> None:
        kept.append(bytes(size["n"]))

    def check(record: bool):
        return check_calls(
            grows,
            test_id="tests/test_x.py::test_grows",
            calls=100,
            rounds=6,
            warmup_rounds=1,
            max_growth_per_call=1000.0,
            capture=tmp_path / "c.bin",
            baselines=tmp_path / "baselines",
            record=record,
            base=str(Path.cwd()),
        )

    for _ in range(3):
        first = check(record=True)
        assert first.problems == ()
    history = CallsStore(tmp_path / "baselines").load("tests/test_x.py::test_grows")
    assert history is not None and len(history.runs) == 3
    size["n"] = 167  # now 200 bytes per call: under the absolute limit, past the history
    worse = check(record=True)
    assert worse.compared_runs == 3
    growth, peak = worse.problems  # it keeps more per call, so its peak grew too
    assert growth.startswith("grows 2") and "past its history's 5" in growth
    assert peak.startswith("peak ") and "past its history's" in peak
    assert "grows" in worse.text() and "test_calls.py" in worse.text()
    again = CallsStore(tmp_path / "baselines").load("tests/test_x.py::test_grows")
    assert again is not None and len(again.runs) == 3  # a failing run is not recorded
