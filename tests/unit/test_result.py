from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from gate.errors import InputError
from gate.model import Frame
from gate.result import SCHEMA_VERSION, dumps, json_schema, parse_result, read_result, write_result
from gate.shapes import Shape
from tests.support import committed_schema, make_result


def test_round_trip(tmp_path: Path) -> None:
    result = make_result()
    path = tmp_path / "result.json"
    write_result(result, path)
    assert read_result(path) == result
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["sites"][0]["user_frame"] == {"function": "__call__", "file": "app.py", "line": 54}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any file the user writes
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not valid JSON"),
        (b'{"schema_version": 1', "not valid JSON"),
        (b"[1, 2]", "not a memgate result"),
        (b'{"schema_version": 99}', "schema_version 99 is newer"),
        (b'{"schema_version": 0}', "schema_version 0 is not a memgate result version"),
        (b'{"schema_version": 2}', "scenario: Field required"),
        (b'{"schema_version": 1}', "not a complete version 1 result: 'curve' is missing"),
    ],
)
def test_bad_result_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        read_result(path)
    assert "\n" not in str(caught.value)


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    data = json.loads(dumps(make_result()))
    data["load"]["requests"] = "lots"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"load\.requests: Input should be a valid integer"):
        read_result(path)


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_version_1_results_migrate_with_a_recomputed_analysis() -> None:
    """A real result written by the first memgate run (DEMO_LEAK_BYTES=256, 10,000
    requests), from before the analysis engine."""
    result = read_result(FIXTURES / "result-v1-leak256.json")
    assert result.schema_version == SCHEMA_VERSION
    assert result.analysis.shape is Shape.LEAK
    assert result.analysis.heap.trend.low <= 256 <= result.analysis.heap.trend.high * 1.01
    top = result.sites[0]
    assert top.user_frame == Frame("__call__", "examples/demo_service/app.py", 54)
    assert top.confidence > 0.9
    assert all(p.rss_anon == p.rss for p in result.processes)
    # Migrated once, it writes and reads back as the current version.
    assert parse_result(json.loads(dumps(result)), source="again") == result


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["curve"].update(points=d["curve"]["points"][:1]), "curve.points: 1 point(s)"),
        (lambda d: d["curve"].update(warmup_index=10_000), "curve.warmup_index: 10000 is not"),
        (lambda d: d["sites"][0].update(series=[1, 2]), "sites.0.series: 2 values for 21"),
    ],
)
def test_inconsistent_results_are_bad_input(tmp_path: Path, edit, message) -> None:
    data = json.loads(dumps(make_result()))
    edit(data)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=re.escape(message)):
        read_result(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["curve"].update(points=d["curve"]["points"][:3]), "cannot be migrated"),
        (
            lambda d: d["sites"][0].update(series=["a"] * len(d["sites"][0]["series"])),
            "cannot be migrated",
        ),
    ],
)
def test_version_1_results_that_cannot_migrate(tmp_path: Path, edit, message) -> None:
    data = json.loads((FIXTURES / "result-v1-leak256.json").read_text())
    edit(data)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=message):
        read_result(path)


@pytest.mark.parametrize("content", [b"[" * 200_000, b'{"schema_version": 1' + b"9" * 5000 + b"}"])
def test_pathological_json_is_bad_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not valid JSON"):
        read_result(path)


def test_results_whose_per_process_or_gc_series_do_not_fit_the_curve_are_refused() -> None:
    import json

    from gate.errors import InputError
    from gate.observed import GcPressure, ProcessCurve
    from gate.result import dumps, parse_result
    from tests.support import make_result

    base = make_result()
    n = len(base.curve.points)
    good = ProcessCurve(1, "capture.bin", True, (0,) * n, (0, n - 1), None)
    bad_cases = {
        "gc.seconds: 1 values": dataclasses.replace(
            base, gc=GcPressure((0,) * n, (0,) * n, (0.0,), 0.0, 0.0, 0.0)
        ),
        "process_curves.0.heap: 1 values": dataclasses.replace(
            base, process_curves=(dataclasses.replace(good, heap=(0,)),)
        ),
        "process_curves.0.running": dataclasses.replace(
            base, process_curves=(dataclasses.replace(good, running=(3, n)),)
        ),
    }
    for expected, result in bad_cases.items():
        with pytest.raises(InputError, match=re.escape(expected)):
            parse_result(json.loads(dumps(result)), source="r.json")
    fine = dataclasses.replace(base, process_curves=(good,))
    assert parse_result(json.loads(dumps(fine)), source="r.json").process_curves == (good,)


@pytest.mark.parametrize(
    ("load", "why"),
    [
        ({"failures": 1000}, "no successful requests (1,000 sent, all failed)"),
        ({"measured_requests": 0}, "no requests measured after the warm-up"),
        ({"stop_reason": "time_limit"}, "the load hit its time limit before the bound asked for"),
    ],
)
def test_a_result_that_measured_nothing_is_refused_by_every_reader(
    tmp_path: Path, load: dict[str, object], why: str
) -> None:
    from gate.cli import main

    result = make_result()
    changed = dataclasses.replace(result, load=dataclasses.replace(result.load, **load))
    path = tmp_path / "result.json"
    path.write_bytes(dumps(changed))
    with pytest.raises(InputError) as caught:
        read_result(path)
    assert str(caught.value) == (
        f"{path}: load: {why}: this run measured nothing (memgate run refuses such a run)"
    )
    baselines = str(tmp_path / "baselines")
    for argv in (["compare"], ["report"], ["baseline", "record"], ["baseline", "accept"]):
        extra = ["--reason", "why"] if argv[-1] == "accept" else []
        assert main([*argv, str(path), "--baselines", baselines, *extra]) == 2
    assert not (tmp_path / "baselines").exists()


def test_the_committed_json_schema_is_the_models() -> None:
    committed_schema("result.schema.json", json_schema())


def test_a_result_memgate_writes_is_valid_by_the_schema_and_a_broken_one_is_not() -> None:
    import jsonschema

    schema = committed_schema("result.schema.json", json_schema())
    written = json.loads(dumps(make_result()))
    jsonschema.validate(written, schema)
    for broken in (
        {**written, "schema_version": "3"},
        {k: v for k, v in written.items() if k != "curve"},
        {**written, "load": {**written["load"], "requests": -1.5}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
