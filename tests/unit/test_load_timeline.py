from __future__ import annotations

import json
from pathlib import Path

from gate.load import LoadConfig, LoadProcess


def config(tmp_path: Path) -> LoadConfig:
    return LoadConfig(
        locustfile="locustfile.py",
        user_classes=[],
        host="http://127.0.0.1:1",
        users=1,
        spawn_rate=1.0,
        warmup_requests=10,
        requests=20,
        duration=None,
        time_limit=5.0,
        timeline_path=str(tmp_path / "load.jsonl"),
    )


def test_progress_follows_complete_lines_only(tmp_path: Path) -> None:
    load = LoadProcess(config(tmp_path), tmp_path / "load.log")
    timeline = tmp_path / "load.jsonl"
    start = json.dumps({"event": "start", "t": 1.0})
    sample = json.dumps({"event": "sample", "t": 1.1, "requests": 12, "failures": 1})
    timeline.write_text(start + "\n" + sample[:20])  # the writer is mid-line
    load._read_events()
    assert (load.progress.phase, load.progress.requests) == ("warm-up", 0)
    timeline.write_text(
        start + "\n" + sample + "\n" + json.dumps({"event": "warmup_done", "t": 1.2}) + "\n"
    )
    load._read_events()
    assert (load.progress.phase, load.progress.requests, load.progress.failures) == (
        "measuring",
        12,
        1,
    )
