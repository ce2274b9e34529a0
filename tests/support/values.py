"""Hand-made values for unit tests: a run result and a baseline run summary."""

from __future__ import annotations

import dataclasses
from typing import Any

from gate.model import (
    Curve,
    CurvePoint,
    EndpointStats,
    Frame,
    LoadSample,
    LoadStats,
    ProcessSample,
    Provenance,
    RunResult,
    ScenarioRef,
    Site,
)
from gate.observed import CaptureInfo
from gate.result import SCHEMA_VERSION
from gate.shapes import Analysis, CurveShape, ModelFit, Shape, SteadyState, Trend


def make_result(leak_per_request: int = 100) -> RunResult:
    """A run of 1000 requests (200 warm-up) whose heap grows ``leak_per_request``."""
    points = tuple(
        CurvePoint(
            requests=float(r),
            t=r / 100,
            heap=1_000_000 + leak_per_request * max(r - 200, 0),
            rss=40_000_000 + 2 * leak_per_request * max(r - 200, 0),
        )
        for r in range(0, 1001, 50)
    )
    slope = float(leak_per_request)
    growing = Trend(
        slope,
        slope - 1.5,
        slope + 2.0,
        1e-6 if slope else 1.0,
        1.0 if slope else 0.0,
        100.0,
        slope * 800,
    )
    still = Trend(0.0, -0.2, 0.2, 0.8, 0.01, 10.0, 0.0)
    leak = Site(
        stack=(Frame("__call__", "app.py", 54), Frame("run", "/venv/lib/uvicorn/x.py", 9)),
        user_frame=Frame("__call__", "app.py", 54),
        live_bytes_steady=0,
        live_bytes_end=leak_per_request * 800,
        trend=growing,
        confidence=1.0 if slope else 0.0,
        series=tuple(leak_per_request * max(int(p.requests) - 200, 0) for p in points),
    )
    steady = Site(
        stack=(Frame("dumps", "/usr/lib/python3.11/json/__init__.py", 231),),
        user_frame=None,
        live_bytes_steady=2048,
        live_bytes_end=2048,
        trend=still,
        confidence=0.0,
        series=tuple(2048 for _ in points),
    )
    fits = (
        ModelFit("flat", 9000.0),
        ModelFit("linear", 90.0),
        ModelFit("plateau", 95.0),
        ModelFit("step", 5000.0),
    )
    shape = Shape.LEAK if slope else Shape.FLAT
    reason = f"grows {slope:.1f} bytes per request" if slope else "no material growth"
    analysis = Analysis(
        steady=SteadyState(
            4, 200.0, "no slowdown after the warm-up: the steady state starts there"
        ),
        heap=CurveShape(shape, growing, 0.0, fits, reason),
        rss=CurveShape(shape, dataclasses.replace(growing, slope=2 * slope), 0.0, fits, reason),
        shape=shape,
    )
    return RunResult(
        schema_version=SCHEMA_VERSION,
        scenario=ScenarioRef(name="demo", path="/repo/scenarios/demo.toml", sha256="ab" * 32),
        settings={"load": {"users": 4}},
        provenance=Provenance(
            started_at="2026-11-21T07:00:00+00:00",
            memgate="0.1.0",
            python="3.11.7",
            memray="1.20.0",
            locust="2.47.0",
            platform="Linux",
            hostname="ci",
            commit=None,
            branch="main",
            env_key="Linux-x86_64-py3.11-memray1.20-2cpu",
        ),
        load=LoadStats(
            requests=1000,
            failures=0,
            warmup_requests=200,
            measured_requests=800,
            duration_s=10.0,
            measured_duration_s=8.0,
            requests_per_second=100.0,
            stop_reason="requests",
            endpoints=(EndpointStats("GET", "/items/[id]", 1000, 0, 3.0, 5.0),),
        ),
        curve=Curve(points=points, warmup_requests=200, warmup_index=4),
        analysis=analysis,
        sites=(leak, steady),
        timeline=(LoadSample(0.0, 0, 0), LoadSample(10.0, 1000, 0)),
        processes=(ProcessSample(0.5, 50.0, 40_000_000, 30_000_000, 3, 12, 1),),
        capture=CaptureInfo(file="capture.bin", bytes=50 * 2**20, read_seconds=4.2, snapshots=900),
        files={"service_log": "service.log"},
    )


def make_summary(
    *,
    slope: float = 0.0,
    low: float | None = None,
    high: float | None = None,
    shape: Shape = Shape.FLAT,
    peak_heap: int = 6 * 2**20,
    peak_rss: int = 34 * 2**20,
    env_key: str = "Linux-x86_64-py3.11-memray1.20-2cpu",
    sites: tuple[tuple[str, float], ...] = (),
    run_id: str = "run",
    settings: str = "settings",
    p_value: float | None = None,
    compared: dict[str, Any] | None = None,
):
    """A baseline run summary: heap growth ``slope`` [low, high] B/request, and growing
    sites given as ``(file:function, slope)``."""
    from gate.summary import RunSummary, SiteSummary, TrendSummary

    low = slope - 0.5 if low is None else low
    high = slope + 0.5 if high is None else high
    provenance = dataclasses.replace(make_result().provenance, env_key=env_key)
    return RunSummary(
        run_id=run_id,
        recorded_at="2026-11-21T07:00:00+00:00",
        provenance=provenance,
        scenario_sha256="ab" * 32,
        settings_sha256=settings,
        shape=shape,
        heap=TrendSummary(
            slope, low, high, p_value if p_value is not None else 1e-6 if slope > 1 else 0.5
        ),
        rss=TrendSummary(slope, low, high, 1e-6 if slope > 1 else 0.5),
        peak_heap=peak_heap,
        final_heap=peak_heap,
        peak_rss=peak_rss,
        final_rss=peak_rss,
        measured_requests=10_000,
        settings=compared,
        sites=tuple(
            SiteSummary(
                key,
                Frame(key.split(":")[1], key.split(":")[0], 10),
                TrendSummary(s, s - 0.5, s + 0.5, 1e-6),
                0.99,
            )
            for key, s in sites
        ),
    )
