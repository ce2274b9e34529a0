"""``[profile] capture = "auto"``: count first, trace only when counting cannot decide.

The first run is recorded by counters (nothing traced: the service at near its own
speed, :mod:`gate.recording.counters`). It decides alone when it rules out growth: the
heap right after full collections grew, with 95% confidence, by less than
``CONCLUSIVE_BELOW`` bytes a request, and the run's shape is no leak. Otherwise (the heap
grew, or it wanders too much for counting to tell, or too few full collections were
read), the load runs again traced (memray, read live), and that run is the one judged:
its sites tell a leak that the heap's noise hides, and name the lines. The counted run's
files are in ``counted/`` either way.

A clean service whose counted heap is tight (the demo's: 6 B/request wide) is then
checked at 0.85x its speed or better; a noisy one (tens of KiB of wander: a 64 B/request
leak hid in it in 10 of 10 counted runs) is traced as before."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gate.analysis.shape import retained_shape
from gate.layout import COUNTED
from gate.model import RunResult
from gate.observed import CountedFirst
from gate.scenario import ScenarioFile
from gate.shapes import Shape

FOLDER = COUNTED
CONCLUSIVE_BELOW = 16.0
"""Bytes per request the counted heap's growth must be surely below (the top of its 95%
interval) to decide alone: a quarter of the smallest leak a check must catch (64
B/request); a 16 B/request leak counts about 20 (pymalloc's blocks)."""
DECIDING = (Shape.FLAT, Shape.PLATEAU, Shape.STEP)
"""The shapes a counted run may decide with: no leak, and no RSS growth."""


RECORDED_BOTH = (
    "it decided; a check that records traces as well, so that the history keeps both kinds"
)
"""Why a recording check traced after a counted run that decided (``--record``)."""


def is_auto(scenario: ScenarioFile) -> bool:
    return any(m.profile.capture == "auto" for m in scenario.members())


def undecided(result: RunResult, limit: float | None = None) -> str | None:
    """Why a counted run cannot decide alone, in a line; ``None`` when it can. ``limit``:
    the scenario's ``max_growth_per_request``, if stricter than ``CONCLUSIVE_BELOW``."""
    if result.analysis.shape not in DECIDING:
        return f"its shape is {result.analysis.shape.value}"
    kept = retained_shape(result.curve)
    if kept is None:
        return "too few full collections were read to judge its heap right after them"
    below = min(CONCLUSIVE_BELOW, limit) if limit is not None else CONCLUSIVE_BELOW
    if kept.trend.high >= below:
        return (
            f"its heap right after full collections grew {kept.trend.slope:,.1f} B/request"
            f" [{kept.trend.low:,.1f}, {kept.trend.high:,.1f}]: growth of"
            f" {below:g} B/request or more is not ruled out"
        )
    return None


def decided(result: RunResult) -> RunResult:
    """A counted run that decided alone, as the run's result: its files are in
    ``counted/`` beside it."""
    prefix = _counted_folder(result.scenario.service)
    files = {name: f"{prefix}/{path}" for name, path in result.files.items()}
    return dataclasses.replace(result, files=files)


def traced(scenario: ScenarioFile) -> ScenarioFile:
    """The scenario as the traced run runs it: read live, its own requests."""
    return scenario.with_overrides(capture="live")


def reasons(scenario: ScenarioFile, counted: Sequence[RunResult]) -> dict[str | None, str | None]:
    """Why each service's counted run cannot decide alone (:func:`undecided`, with its
    scenario's ``max_growth_per_request``), by service name."""
    limits = {m.service_name: m.budgets.max_growth_per_request for m in scenario.members()}
    return {r.scenario.service: undecided(r, limits.get(r.scenario.service)) for r in counted}


def with_counted_first(
    traced_results: Sequence[RunResult],
    counted: Sequence[RunResult],
    why: dict[str | None, str | None],
) -> list[RunResult]:
    """The traced results, each saying which counted run came first and why the load ran
    again traced (``why``: why each service's counted run could not decide, by service,
    :func:`reasons`; none could not: a recording check traces anyway)."""
    by_service = {r.scenario.service: r for r in counted}
    out = []
    for result in traced_results:
        service = result.scenario.service
        first = by_service.get(service)
        if first is not None:
            reason = why.get(service)
            if reason is not None:
                reason = f"it could not decide: {reason}"
            elif any(w is not None for w in why.values()):
                reason = "another service's counted run could not decide"
            else:
                reason = RECORDED_BOTH
            note = CountedFirst(
                folder=_counted_folder(service),
                requests=first.load.measured_requests,
                why=reason,
            )
            result = dataclasses.replace(
                result, capture=dataclasses.replace(result.capture, counted_first=note)
            )
        out.append(result)
    return out


def _counted_folder(service: str | None) -> str:
    """The counted run's folder of ``service``, relative to its judged result's."""
    return FOLDER if service is None else f"../{FOLDER}/{service}"
