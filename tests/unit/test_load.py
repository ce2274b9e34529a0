from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gate.errors import InputError, RunError
from gate.load import LoadConfig, LoadProcess
from gate.load.child import LoadFailure
from gate.load.master import _Workers


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


class FinishedProcess:
    def __init__(self, code: int) -> None:
        self.code = code

    def wait(self) -> int:
        return self.code

    def poll(self) -> int:
        return self.code


def finished_load(tmp_path: Path, events: list[dict[str, object]], code: int = 0) -> LoadProcess:
    load = LoadProcess(config(tmp_path), tmp_path / "load.log")
    (tmp_path / "load.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "load.log").write_text("locust said something\n")
    load._proc = FinishedProcess(code)  # type: ignore[assignment]
    return load


def test_outcome_of_a_finished_load(tmp_path: Path) -> None:
    load = finished_load(
        tmp_path,
        [
            {"event": "start", "t": 10.0, "requests": 0, "failures": 0},
            {"event": "warmup_done", "t": 10.5, "requests": 12},
            {"event": "sample", "t": 10.6, "requests": 14, "failures": 0},
            {
                "event": "end",
                "t": 11.0,
                "requests": 40,
                "failures": 1,
                "stop_reason": "requests",
                "endpoints": [
                    {
                        "method": "GET",
                        "name": "/",
                        "requests": 40,
                        "failures": 1,
                        "median_ms": 2.0,
                        "p95_ms": 4.0,
                    }
                ],
            },
        ],
    )
    outcome = load.outcome()
    assert [s.requests for s in outcome.samples] == [0, 14, 40]
    assert (outcome.started_at, outcome.warmup_done_at, outcome.ended_at) == (10.0, 10.5, 11.0)
    assert outcome.endpoints[0].p95_ms == 4.0


def test_locustfile_errors_are_bad_input_and_load_errors_are_run_errors(tmp_path: Path) -> None:
    bad_file = finished_load(
        tmp_path,
        [{"event": "error", "t": 1.0, "message": "SyntaxError: invalid syntax", "kind": "input"}],
        code=1,
    )
    with pytest.raises(InputError, match="load failed: SyntaxError: invalid syntax"):
        bad_file.outcome()
    crashed = finished_load(
        tmp_path,
        [
            {"event": "start", "t": 1.0, "requests": 0, "failures": 0},
            {"event": "error", "t": 2.0, "message": "RuntimeError: boom", "kind": "run"},
        ],
        code=1,
    )
    with pytest.raises(RunError, match="load failed: RuntimeError: boom"):
        crashed.outcome()


def test_a_load_that_exits_without_an_end_is_a_run_error(tmp_path: Path) -> None:
    load = finished_load(
        tmp_path, [{"event": "start", "t": 1.0, "requests": 0, "failures": 0}], code=-9
    )
    with pytest.raises(
        RunError, match=r"exited with code -9 before finishing .*: locust said something"
    ):
        load.outcome()


END = {"event": "end", "t": 2.0, "requests": 40, "failures": 0, "stop_reason": "requests"}


def test_a_load_killed_on_its_way_out_after_its_end_is_whole(tmp_path: Path) -> None:
    """Once its end is read, the load process's teardown is not waited for: killed then,
    its outcome stands; killed before its end, it is a run error."""
    started = {"event": "start", "t": 1.0, "requests": 0, "failures": 0}
    for events, whole in (([started, {**END, "endpoints": []}], True), ([started], False)):
        load = LoadProcess(config(tmp_path), tmp_path / "load.log")
        (tmp_path / "load.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        (tmp_path / "load.log").write_text("")
        load._proc = subprocess.Popen(  # as a load process still in its teardown
            [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        load.poll()
        assert load.ended is whole
        load.kill()
        assert load._proc.returncode == -signal.SIGKILL
        if whole:
            assert load.outcome().ended_at == 2.0
        else:
            with pytest.raises(RunError, match="exited with code -9 before finishing"):
                load.outcome()


def test_a_distributed_end_lists_the_workers_and_parses_as_before(tmp_path: Path) -> None:
    end = {
        "event": "end",
        "t": 3.0,
        "requests": 30,
        "failures": 0,
        "stop_reason": "duration",
        "endpoints": [],
        "workers": [{"worker": 1, "requests": 16}, {"worker": 2, "requests": 14}],
    }
    load = finished_load(
        tmp_path,
        [
            {"event": "start", "t": 1.0, "requests": 0, "failures": 0},
            {"event": "warmup_done", "t": 1.0, "requests": 0},
            end,
        ],
    )
    outcome = load.outcome()
    assert (outcome.stop_reason, [s.requests for s in outcome.samples]) == ("duration", [0, 30])


def test_a_workers_locustfile_error_wins_over_the_masters_report_of_it(tmp_path: Path) -> None:
    """A worker whose locustfile raises writes its error, then exits; the master then
    reports the exit. The first error says what went wrong: bad input, exit code 2."""
    load = finished_load(
        tmp_path,
        [
            {
                "event": "error",
                "t": 2.0,
                "message": "Locust worker 2: RuntimeError: no worker here",
                "kind": "input",
            },
            {
                "event": "error",
                "t": 2.1,
                "message": "Locust worker 2 exited with code 1 before connecting to the master",
                "kind": "run",
            },
        ],
        code=1,
    )
    with pytest.raises(InputError, match=r"load failed: Locust worker 2: RuntimeError: no worker"):
        load.outcome()


class Ended:
    def __init__(self, code: int | None) -> None:
        self.code = code

    def poll(self) -> int | None:
        return self.code


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([None, None], None),
        ([None, 7], "Locust worker 2 exited with code 7 under load"),
        ([-9, None], "Locust worker 1 exited with SIGKILL under load"),
        ([0, None], "Locust worker 1 exited with code 0 under load"),
    ],
)
def test_any_worker_that_ends_stops_the_load(
    tmp_path: Path, codes: list[int | None], expected: str | None
) -> None:
    workers = _Workers(config(tmp_path), master_port=1)
    workers.procs = {i: Ended(code) for i, code in enumerate(codes, start=1)}  # type: ignore[assignment]
    if expected is None:
        workers.check("under load")
    else:
        with pytest.raises(LoadFailure, match=f"^{expected}$"):
            workers.check("under load")


def test_the_config_reaches_the_workers_whole(tmp_path: Path) -> None:
    """Workers read the load's config from their command line, as the master does."""
    cfg = dataclasses.replace(config(tmp_path), processes=3)
    assert LoadConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    assert config(tmp_path).processes == 1


def test_requests_that_miss_the_services_are_counted_by_place(tmp_path: Path) -> None:
    from gate.load.child import Destinations

    cfg = dataclasses.replace(
        config(tmp_path), host="http://127.0.0.1:8000", service_ports=[8000, 8001]
    )
    places = Destinations(cfg)
    for url in (
        "http://127.0.0.1:8000/items/1",  # the target
        "http://localhost:8000/",  # the target by another loopback name
        "http://127.0.0.1:8001/jobs",  # another service of the scenario
        "/relative",  # Locust's host: the target
        None,  # a client that says no URL: it cannot be shown to reach the service
        "",
        "http://127.0.0.1:9999/",  # another program
        "http://127.0.0.1:9999/again",
        "http://example.com/",  # not even loopback
        "http://[::1/",  # no URL at all
    ):
        places.on_request(url=url, name="x")
    places.on_request(name="x", context={})  # Locust's event without a url at all
    no_url = "an unknown place (no URL)"
    assert places.missed == {"127.0.0.1:9999": 2, "example.com:80": 1, no_url: 4}
    places.add({"127.0.0.1:9999": 3, "junk": "3", 4: 4, no_url: 1})
    places.add(None)
    assert places.missed == {"127.0.0.1:9999": 5, "example.com:80": 1, no_url: 5}


class _Stats:
    """Locust's stats, as ``follow`` reads them: 100 more requests at each sample; at
    ``enough_at`` requests, memgate says it read enough (the file appears)."""

    def __init__(self, enough: Path | None, enough_at: int) -> None:
        self.done, self.enough, self.enough_at = 0, enough, enough_at
        self.num_failures = 0

    @property
    def num_requests(self) -> int:
        self.done += 100
        if self.enough is not None and self.done >= self.enough_at:
            self.enough.write_text("enough\n")
        return self.done


@pytest.mark.parametrize("waits", [False, True])
def test_the_requests_bound_waits_for_enough_when_told(tmp_path: Path, waits: bool) -> None:
    """A counted service's load runs on past its requests until memgate has read enough
    full collections (``enough_path``); without it, the bound ends it at once."""
    import time
    from types import SimpleNamespace

    from gate.load.child import follow

    enough = tmp_path / "load.enough"
    cfg = dataclasses.replace(
        config(tmp_path),
        warmup_requests=0,
        requests=500,
        duration=None,
        time_limit=60,
        enough_path=str(enough) if waits else "",
    )
    stats = _Stats(enough if waits else None, enough_at=1500)
    env = SimpleNamespace(stats=stats, shape_class=None)
    reason = follow(cfg, env, lambda *a, **k: None, time.monotonic())
    assert reason == "requests"
    assert stats.done >= 1500 if waits else stats.done < 1000
