"""The runner's refusals: a load or a stop that leaves nothing honest to measure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gate.errors import RunError
from gate.load import LoadOutcome
from gate.model import LoadSample
from gate.run.refusals import check_load, check_profiled, check_stop
from gate.scenario import load_scenario
from gate.service.process import StopInfo
from gate.service.tree import RawProcessSample
from tests.support import MINIMAL


def outcome(
    samples: list[tuple[float, int, int]], warmup_at: float | None = 1.0, stop: str = "requests"
) -> LoadOutcome:
    return LoadOutcome(
        started_at=0.0,
        warmup_done_at=warmup_at,
        ended_at=samples[-1][0],
        samples=tuple(LoadSample(*s) for s in samples),
        stop_reason=stop,
        endpoints=(),
    )


@pytest.fixture
def scenario(write_scenario):
    (only,) = load_scenario(write_scenario(MINIMAL)).members()
    return only


def test_a_good_load_passes(scenario, tmp_path: Path) -> None:
    check_load(outcome([(0, 0, 0), (1, 500, 0), (2, 700, 3)]), scenario, tmp_path)


@pytest.mark.parametrize(
    ("load", "message"),
    [
        (
            outcome([(0, 0, 0), (1, 500, 500), (2, 700, 700)]),
            "load produced no successful requests (700 sent",
        ),
        (
            outcome([(0, 0, 0), (2, 20, 0)], warmup_at=None, stop="time_limit"),
            "load completed only 20 of 500 warm-up",
        ),
        (
            outcome([(0, 0, 0), (1, 500, 0), (2, 700, 200)]),
            "no successful requests after warm-up (200 sent",
        ),
        (
            outcome([(0, 0, 0), (1, 500, 0), (2, 540, 0)], stop="time_limit"),
            "load hit its 600 s time limit after measuring 40 requests,"
            " before the 100 requests asked for",
        ),
    ],
)
def test_loads_that_cannot_be_measured(scenario, tmp_path: Path, load, message) -> None:
    with pytest.raises(RunError) as caught:
        check_load(load, scenario, tmp_path)
    assert str(caught.value).startswith(message)


def test_stops(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text("Traceback...\nMemoryError\n")
    check_stop(StopInfo("SIGINT", 0), log)
    check_stop(StopInfo("SIGTERM", -15), log)
    with pytest.raises(
        RunError, match=r"service ended during the load \(exit code 1\) .*: MemoryError$"
    ):
        check_stop(StopInfo("none", 1), log)
    with pytest.raises(RunError, match=r"\(killed by SIGSEGV\)"):
        check_stop(StopInfo("none", -11), log)
    with pytest.raises(RunError, match="ignored the stop signals and was killed"):
        check_stop(StopInfo("SIGKILL", -9), log)


def tree(t: float, *pids: int) -> RawProcessSample:
    return RawProcessSample(t, 0, 0, 1, 1, len(pids), pids)


def test_workers_without_captures_are_refused() -> None:
    during = [tree(t, 1, 2, 3) for t in range(10)]
    with pytest.raises(RunError, match=r"2 more process.*follow_fork = true"):
        check_profiled(during, set(), follow_fork=False)
    with pytest.raises(RunError, match=r"pid 3\).*not spawn"):
        check_profiled(during, {2}, follow_fork=True)


def test_profiled_workers_and_brief_helpers_pass() -> None:
    # pid 9 lived for 2 of 10 samples (a helper command): not a worker left unprofiled.
    check_profiled([tree(t, 1, 2, 3, *([9] if t < 2 else [])) for t in range(10)], {2, 3}, True)
    check_profiled([tree(t, 1) for t in range(10)], set(), follow_fork=False)


def test_workers_restarted_one_after_another_count_together() -> None:
    # Each unprofiled worker lives for 3 of 12 samples; one is always there.
    during = [tree(t, 1, 100 + t // 3) for t in range(12)]
    with pytest.raises(RunError, match=r"4 more process"):
        check_profiled(during, set(), follow_fork=False)


def test_a_load_that_missed_the_service_is_refused(scenario, tmp_path: Path) -> None:
    missed = dataclasses.replace(
        outcome([(0, 0, 0), (1, 500, 0), (2, 700, 3)]), missed={"127.0.0.1:9999": 350}
    )
    with pytest.raises(RunError) as caught:
        check_load(missed, scenario, tmp_path)
    assert str(caught.value).startswith(
        "350 of 700 requests did not go to the service under test (350 to 127.0.0.1:9999)"
    )
