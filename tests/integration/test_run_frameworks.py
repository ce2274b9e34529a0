"""Real framework apps, installed from the registry, under the real memray and Locust:
Flask + SQLAlchemy on SQLite and Django (ORM, migrations, templates), each served by
gunicorn with two sync workers (``[profile] follow_fork``). Their long-lived heaps and
their own reference cycles are what made clean services fail before memgate judged the
heap that survives a full collection: a clean run must not read as a leak, and a list
or dict planted to keep each request's data must fail, with the container named.

These are short runs (a few thousand requests: the apps serve 60 to 300 requests per
second under memray on 2 cores); ``benchmarks/false_flags.py`` repeats them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.analysis.shape import MIN_RETAINED, measured_retained
from gate.model import RunResult
from gate.outcome import Outcome
from gate.run.orchestrate import run_scenario
from gate.scenario import BudgetSpec, load_scenario
from gate.shapes import Shape
from gate.summary import summarize
from gate.verdict import decide

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
APPS = {
    # scenario, the planted leak's variable, its container, measured requests, warm-up
    "flask": ("scenarios/frameworks/flask.toml", "FLASK_LEAK", "_recent_responses", 4500, 600),
    # Django's warm-up must let each worker's caches fill; by the growing site's stack,
    # SQLite's statement cache, one statement per page of the 60 the load reads (Django
    # inlines LIMIT and OFFSET). With 400 requests of warm-up, the
    # heap right after full collections still grew 95-179 B/request, certainly, and a
    # clean check with no history failed; with 1,200, it was flat.
    "django": ("scenarios/frameworks/django.toml", "DJANGO_LEAK", "_page_cache", 2000, 1200),
}


def run_app(name: str, out: Path, leak: bool) -> RunResult:
    path, variable, _, requests, warmup = APPS[name]
    scenario = load_scenario(REPO / path).with_overrides(
        env={variable: "1" if leak else "0"}, requests=requests, warmup=warmup
    )
    return run_scenario(scenario, out)


@pytest.mark.parametrize("name", list(APPS))
def test_a_clean_framework_app_does_not_fail_as_a_leak(name: str, tmp_path: Path) -> None:
    result = run_app(name, tmp_path, leak=False)
    assert result.load.failures == 0 and len(result.process_curves) == 3  # master, 2 workers
    assert result.full_collections is not None and result.full_collections.forced > 0
    # The processes' heaps summed right after their own full collections: a leak is judged
    # on them (a clean heap is then described by every point, far denser).
    assert len(measured_retained(result.curve)) >= MIN_RETAINED, result.curve.retained
    decision = decide(summarize(result), None, BudgetSpec())
    leaks = [f for f in decision.findings if f.check == "leak"]
    assert all(f.severity is not Outcome.FAIL for f in leaks), (result.analysis, leaks)
    assert decision.verdict is not Outcome.FAIL, decision.findings


@pytest.mark.parametrize("name", list(APPS))
def test_a_container_kept_per_request_fails_and_is_named(name: str, tmp_path: Path) -> None:
    result = run_app(name, tmp_path, leak=True)
    decision = decide(summarize(result), None, BudgetSpec())
    # Never a pass; a certain leak fails, judged on the sum of the processes' heaps
    # right after their own full collections.
    assert decision.verdict is not Outcome.PASS, decision.findings
    assert any(f.check in ("leak", "site") for f in decision.findings), decision.findings
    assert result.analysis.basis == "retained", result.analysis
    if result.analysis.shape is Shape.LEAK:
        assert decision.verdict is Outcome.FAIL, decision.findings
    assert result.retention is not None
    kept = [r.what for r in result.retention.retained if r.kind == "container"]
    assert any(what.endswith(APPS[name][2]) for what in kept), kept
