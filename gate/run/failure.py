"""``failure.json``: the account of a run that could not measure."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from gate._files import write_atomic
from gate.errors import RunError
from gate.layout import FAILURE
from gate.run.progress import Watched
from gate.scenario import ScenarioFile
from gate.service.process import ServiceProcess
from gate.spacing import thin

FAILURE_SAMPLES = 200
"""Process samples kept per service (evenly thinned)."""


def write_failure(
    out_dir: Path,
    scenario: ScenarioFile,
    error: RunError,
    services: Sequence[ServiceProcess],
    run: Watched,
) -> Path:
    """``failure.json`` beside what the run left (service logs, load timeline, captures):
    why it failed, in which phase, the load so far and each service's process tree over
    time, so that a run that could not measure still tells what it saw."""
    doc = {
        "failure_version": 1,
        "scenario": scenario.name,
        "reason": str(error),
        "exit_code": int(error.exit_code),
        "phase": run.failed_in or run.last_phase,
        "load": {"requests": run.requests, "failures": run.failures},
    }
    if scenario.doc.service is not None:
        service = services[0] if services else None
        doc["service"] = {"returncode": service.exit_code() if service else None}
        doc["processes"] = _failure_samples(service)
    else:
        doc["services"] = {
            s.scenario.service_name: {
                "returncode": s.exit_code(),
                "processes": _failure_samples(s),
            }
            for s in services
        }
    folders = [out_dir, *(s.capture_path.parent for s in services)]
    doc["files"] = {
        str(path.relative_to(out_dir)): path.stat().st_size
        for folder in dict.fromkeys(folders)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != FAILURE
    }
    path = out_dir / FAILURE
    write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n")
    return path


def _failure_samples(service: ServiceProcess | None) -> list[dict[str, object]]:
    samples = service.samples() if service else []
    start = samples[0].t if samples else 0.0
    return [
        {k: v for k, v in dataclasses.asdict(s).items() if k != "pids"}
        | {"t": round(s.t - start, 3)}
        for s in thin(samples, FAILURE_SAMPLES)
    ]
