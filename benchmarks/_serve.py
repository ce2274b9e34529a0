"""Serve the demo load for a while, with or without memray, outside ``memgate run``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gate.load import LoadConfig, LoadProcess
from gate.loopback import free_port
from gate.recording.capture_file import Capture
from gate.scenario import ProfileSpec, Scenario
from gate.service.process import ServiceProcess


def serve_once(
    scenario: Scenario,
    out: Path,
    profile: ProfileSpec | None,
    seconds: float,
    processes: int = 1,
    collect: bool = False,
) -> tuple[float, int]:
    """Requests per second of the measured phase, and the capture's size in bytes;
    ``processes`` Locust processes generate the load; ``collect``: memgate's agent runs
    its full collections from the load's start (``[profile] retained_heap``)."""
    out.mkdir(parents=True, exist_ok=True)
    if profile is not None:
        settings = scenario.settings.model_copy(update={"profile": profile})
        scenario = dataclasses.replace(scenario, settings=settings)
    port = free_port()
    service = ServiceProcess(scenario, port, out, profiled=profile is not None)
    service.start()
    try:
        service.wait_healthy()
        if collect:
            service.collect(measuring=True)
        load = LoadProcess(
            LoadConfig(
                locustfile=str(scenario.locustfile),
                user_classes=[],
                host=f"http://127.0.0.1:{port}",
                users=scenario.load.users,
                spawn_rate=scenario.load.spawn_rate,
                warmup_requests=300,
                requests=None,
                duration=seconds,
                time_limit=seconds + 60,
                timeline_path=str(out / "load.jsonl"),
                processes=processes,
            ),
            out / "load.log",
        )
        load.start()
        outcome = load.outcome()
    finally:
        service.stop()
    assert outcome.warmup_done_at is not None
    warm = next(s for s in outcome.samples if s.t >= outcome.warmup_done_at)
    served = outcome.samples[-1].requests - warm.requests
    rps = served / (outcome.ended_at - warm.t)
    profiled = profile is not None and profile.capture == "file"
    size = service.capture_path.stat().st_size if profiled else 0
    return rps, size


def read_capture(path: Path) -> int:
    """What ``memgate run`` does with a capture: snapshots, then live bytes per stack."""
    with Capture(path) as capture:
        snapshots = capture.snapshots()
        step = max(len(snapshots) // 200, 1)
        indexes = list(range(0, len(snapshots), step))
        return sum(1 for _ in capture.live_bytes_by_stack(indexes))
