"""Counts other than memory: a service leaking file descriptors and threads fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.analysis.resources import LABELS
from gate.outcome import Outcome
from gate.run.orchestrate import run_scenario
from gate.scenario import BudgetSpec, load_scenario
from gate.summary import summarize
from gate.verdict import decide
from tests.support import server

pytestmark = pytest.mark.integration

LEAKS = (
    "Handler.kept.append(open(os.devnull))\n"
    "        if Handler.served % 25 == 0:\n"
    "            import threading, time\n"
    "            threading.Thread(target=time.sleep, args=(600,), daemon=True).start()"
)


def growth(tmp_path: Path, on_request: str) -> dict[str, bool]:
    scenario = server(tmp_path, on_request)
    scenario.write_text(scenario.read_text().replace("requests = 300", "requests = 800"))
    result = run_scenario(load_scenario(scenario), tmp_path / "out")
    decision = decide(summarize(result), None, BudgetSpec())
    grows = {r.name: r.grows for r in result.resources}
    failed = {f.metric for f in decision.findings if f.check == "resource"}
    assert failed == {f"{LABELS[name]} growth" for name, g in grows.items() if g}
    assert (decision.verdict is Outcome.FAIL) == any(grows.values())
    return grows


def test_leaked_file_descriptors_and_threads_fail(tmp_path: Path) -> None:
    grows = growth(tmp_path, LEAKS)
    assert grows == {"fds": True, "sockets": False, "threads": True, "processes": False}


def test_a_service_that_keeps_nothing_grows_nothing(tmp_path: Path) -> None:
    assert not any(growth(tmp_path, "pass").values())


def test_garbage_collector_pressure_is_counted_per_request(tmp_path: Path) -> None:
    """Every request leaves 2000 reference cycles: about three collections of the
    youngest generation per request (one per 700 objects), timed by the probe."""
    cycles = "for _ in range(2000):\n            c = []; c.append(c)"
    scenario = server(tmp_path, cycles)
    result = run_scenario(load_scenario(scenario), tmp_path / "out")
    assert result.gc is not None
    assert 1.0 < result.gc.collections_per_request < 6.0
    assert result.gc.seconds_per_request > 0
    assert list(result.gc.collections) == sorted(result.gc.collections)
    assert len(result.gc.seconds) == len(result.curve.points)
    (tmp_path / "quiet").mkdir()
    quiet = run_scenario(load_scenario(server(tmp_path / "quiet", "pass")), tmp_path / "q")
    assert quiet.gc is not None and quiet.gc.collections_per_request < 0.5
