"""``result.json``: write a :class:`RunResult` and read one back, validated.

The schema is the dataclasses of ``gate.model``; ``schema_version`` changes whenever a
field is renamed, removed or changes meaning (adding an optional field does not). Older
versions are migrated on read, newer ones refused. Documented in
``docs/result-schema.md``.
"""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from gate._files import write_atomic
from gate._json import bad_integer, first_error, first_line, read_json, validate
from gate._json import json_schema as schema_of
from gate.environment import env_key
from gate.errors import InputError
from gate.model import Curve, Frame, RunResult
from gate.scenario import NAME_PATTERN, run_settings

_MACHINES = frozenset({"x86_64", "aarch64", "arm64", "i686", "ppc64le", "s390x"})

SCHEMA_VERSION = 3
"""3: ``scenario.service`` (one of a scenario's several services): a memgate that reads
version 2 only would drop it and file the service's run under the scenario's history,
so it must refuse these files. 2: ``analysis``, sites with ``trend`` and ``confidence``,
anonymous RSS (memgate 0.1, analysis engine); read as version 3 with no service. 1:
curve and sites only (memgate 0.1, first version)."""


@functools.cache
def _adapter() -> TypeAdapter[RunResult]:
    return TypeAdapter(RunResult)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``result.json`` as this memgate writes it (from the model:
    ``docs/result.schema.json`` is this, for other tools)."""
    return schema_of(_adapter(), f"memgate result.json, schema_version {SCHEMA_VERSION}")


def dumps(result: RunResult) -> bytes:
    return _adapter().dump_json(result, indent=2) + b"\n"


def write_result(result: RunResult, path: Path) -> None:
    write_atomic(path, dumps(result))


def read_result(path: Path) -> RunResult:
    """Read and validate a result file; :class:`InputError` with one line if it is bad."""
    data, raw = read_json(path, "result")
    return parse_result(data, source=str(path), raw=raw)


def parse_result(data: Any, *, source: str, raw: bytes | None = None) -> RunResult:
    """``data``, parsed from ``raw`` if given, validated: :class:`InputError` with one
    line naming ``source`` if it is no usable result."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{source}: not a memgate result (no integer schema_version)")
    if version < 1:
        raise InputError(f"{source}: schema_version {version} is not a memgate result version")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{source}: schema_version {version} is newer than this memgate"
            f" understands ({SCHEMA_VERSION}); upgrade memgate"
        )
    if version == 1:
        data, raw = _migrated(data, source), None
    try:
        result = validate(_adapter(), data, raw)
    except ValueError as exc:
        raise InputError(f"{source}: {first_error(exc)}") from None
    problem = _inconsistency(result)
    if problem:
        raise InputError(f"{source}: {problem}")
    try:
        run_settings(result.settings)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    return result


def _migrated(data: dict[str, Any], source: str) -> dict[str, Any]:
    try:
        return _v1_to_v2(data)
    except KeyError as exc:
        raise InputError(f"{source}: not a complete version 1 result: {exc} is missing") from None
    except (TypeError, ValueError, IndexError) as exc:  # a version 1 file that cannot migrate
        raise InputError(
            f"{source}: version 1 result cannot be migrated: {first_line(exc)}"
        ) from None


def _inconsistency(result: RunResult) -> str | None:
    """What makes a well-typed result unusable, if anything."""
    if not re.fullmatch(NAME_PATTERN, result.scenario.name):
        return f"scenario.name: {result.scenario.name!r} is not a scenario name"
    service = result.scenario.service
    if service is not None and not re.fullmatch(NAME_PATTERN, service):
        return f"scenario.service: {service!r} is not a service name"
    problem = bad_integer(result)
    if problem:
        return problem
    nothing = result.load.measured_nothing
    if nothing:
        return f"load: {nothing}: this run measured nothing (memgate run refuses such a run)"
    trends = [("analysis.heap", result.analysis.heap.trend)]
    trends += [("analysis.rss", result.analysis.rss.trend)]
    trends += [(f"sites.{n}", site.trend) for n, site in enumerate(result.sites)]
    for where, trend in trends:
        if not 0 <= trend.p_value <= 1:
            return f"{where}.trend.p_value: {trend.p_value!r} is not a probability"
    n = len(result.curve.points)
    if n < 2:
        return f"curve.points: {n} point(s), at least 2 are needed"
    for number, (before, point) in enumerate(itertools.pairwise(result.curve.points), start=1):
        if point.requests < before.requests:
            return f"curve.points.{number}.requests: fewer than the point before"
    if not 0 <= result.curve.warmup_index < n:
        return f"curve.warmup_index: {result.curve.warmup_index} is not a point of the curve"
    if not result.curve.warmup_index <= result.analysis.steady.index < n:
        return f"analysis.steady.index: {result.analysis.steady.index} is not a measured point"
    for number, site in enumerate(result.sites):
        if len(site.series) != n:
            return f"sites.{number}.series: {len(site.series)} values for {n} curve points"
    if result.gc is not None:
        for name in ("collections", "full", "seconds"):
            values = getattr(result.gc, name)
            if len(values) != n:
                return f"gc.{name}: {len(values)} values for {n} curve points"
    for number, process in enumerate(result.process_curves):
        if len(process.heap) != n:
            return f"process_curves.{number}.heap: {len(process.heap)} values for {n} points"
        first, last = process.running
        if not 0 <= first <= last < n:
            return f"process_curves.{number}.running: {first}..{last} is not within the curve"
    return None


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had no ``analysis``, sites with a plain ``growth_per_request`` from the
    warm-up point, memray's VmRSS as the curve's RSS, and no branch or environment key.
    The analysis is pure, so it is recomputed from the stored curve and site series; the
    anonymous RSS was not sampled, so ``rss_anon`` is taken as ``rss``; the environment
    key is rebuilt from the platform string, with the CPU count unknown (``?cpu``), so
    a version 1 run never silently matches a current environment."""
    # Imported here: the analysis loads scipy (about a second), which reading a current
    # result, recording it or showing a history never needs.
    from gate.analysis.shape import analyse_curve
    from gate.analysis.sites import remeasure

    curve = _piece(Curve, data["curve"], "curve")
    analysis = analyse_curve(curve)
    sites = remeasure(
        (
            (
                _piece(tuple[Frame, ...], site["stack"], f"sites.{number}.stack"),
                _piece(Frame | None, site["user_frame"], f"sites.{number}.user_frame"),
                _piece(tuple[int, ...], site["series"], f"sites.{number}.series"),
            )
            for number, site in enumerate(data["sites"])
        ),
        requests=[p.requests for p in curve.points],
        steady_index=analysis.steady.index,
    )
    old = data["provenance"]
    system, _, rest = str(old["platform"]).partition("-")
    machine = next((part for part in rest.split("-") if part in _MACHINES), "unknown")
    return {
        **data,
        "provenance": {
            **old,
            "branch": None,
            "env_key": env_key(system, machine, old["python"], old["memray"], None),
        },
        "schema_version": SCHEMA_VERSION,
        "analysis": analysis,
        "sites": sites,
        "processes": [{**p, "rss_anon": p.get("rss_anon", p["rss"])} for p in data["processes"]],
    }


def _piece(kind: Any, data: Any, where: str) -> Any:
    """A part of a version 1 result, validated as strictly as a current file."""
    try:
        return validate(TypeAdapter(kind), data)
    except ValueError as exc:
        raise ValueError(first_error(exc, where)) from None
