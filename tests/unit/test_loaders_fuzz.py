"""Hostile files through memgate's loaders, by the real command (``gate.cli.main``).

Scenario files, baseline histories and result files are broken the ways a hand edit, a
bad merge or a full disk breaks them: a key deleted or unknown, a value of another
type, an impossible number, NaN, truncation, junk nesting, bytes that are not UTF-8.
Each mutation makes the file invalid whatever it hits (the schema itself says which
keys are required and which values are integers), so the property is strict: exit 2,
exactly one line on standard error naming the file, nothing on standard output, never
a traceback, an internal error or a pass.

``MEMGATE_FUZZ_EXAMPLES=2000`` runs more examples than CI does.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
import os
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import gate.run.orchestrate
from gate.calls_history import CallsHistory, CallsRun, CallsStore
from gate.cli import main
from gate.errors import InputError
from gate.model import RunResult
from gate.result import write_result
from gate.scenario import load_scenario
from gate.summary import History
from tests.support import FUZZ, REPO, make_result, toml

FIXTURES = REPO / "tests" / "fixtures"
HISTORIES = {
    "schema 2": (REPO / "baselines" / "demo.json").read_bytes(),
    "schema 1": (FIXTURES / "baseline-v1-demo.json").read_bytes(),
}
V1_RESULT = (FIXTURES / "result-v1-leak256.json").read_bytes()


@pytest.fixture(autouse=True)
def outside_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors go to standard error (inside Actions they go to standard output)."""
    for name in list(os.environ):
        if name.startswith("GITHUB_"):
            monkeypatch.delenv(name)


def memgate(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(outcome: tuple[int, str, str], path: Path, what: str = "") -> None:
    """Exit 2, one line on standard error naming ``path``, nothing else; ``what`` was
    done to the file."""
    code, out, err = outcome
    lines = err.splitlines()
    assert (code, len(lines)) == (2, 1), f"{what}: exit {code}, stderr {err!r}"
    assert lines[0].startswith(f"memgate: error: {path}: "), f"{what}: {lines[0]}"
    assert out == "", what


# --- JSON files: paths, the schema's view of them, and mutations ---------------------

Path_ = tuple[str | int, ...]


def nodes(data: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every value in parsed JSON with its path, parents first."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from nodes(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from nodes(value, (*path, index))


def declared(kind: Any, data: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any, bool]]:
    """``(path, declared type, required)`` of every value in ``data`` read as ``kind``
    (dataclasses, ``tuple[X, ...]``, ``X | None``); free-form dicts are not entered."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if data is not None and len(inner) == 1:
            yield from declared(inner[0], data, path)
    elif origin is tuple and isinstance(data, list):
        for index, item in enumerate(data):
            yield (*path, index), typing.get_args(kind)[0], False
            yield from declared(typing.get_args(kind)[0], item, (*path, index))
    elif dataclasses.is_dataclass(kind) and isinstance(data, dict):
        hints = typing.get_type_hints(kind)
        for field in dataclasses.fields(kind):
            if field.name in data:
                no_default = field.default is dataclasses.MISSING
                required = no_default and field.default_factory is dataclasses.MISSING
                yield (*path, field.name), hints[field.name], required
                yield from declared(hints[field.name], data[field.name], (*path, field.name))


def replaced(data: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    data = copy.deepcopy(data)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return data


def deleted(data: Any, path: Path_) -> Any:
    data = copy.deepcopy(data)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return data


HUGE = "__huge_number__"
"""Stands for ``1e999`` (a float JSON can spell but not hold) until the text is written."""
DEEP = "__deep_lists__"
"""Stands for lists nested deeper than ``json.dumps`` can write."""


def text(data: Any, depth: int = 0) -> bytes:
    written = json.dumps(data, indent=1).replace(f'"{HUGE}"', "1e999")
    return written.replace(f'"{DEEP}"', "[" * depth + "]" * depth).encode()


@st.composite
def broken_json(draw: st.DrawFn, raw: bytes, kind: type | None) -> tuple[str, bytes]:
    """A mutation of the JSON file ``raw`` that no reader of ``kind`` may accept, and
    what it did. With ``kind`` ``None`` (a version 1 result, which has no dataclass),
    only mutations that are wrong whatever the schema."""
    data = json.loads(raw)
    # Not inside a result's settings (only its budgets and gate sections are read), nor
    # inside a history run's (free-form: what it was run with, shown when they differ).
    everything = [
        path
        for path, _ in nodes(data)
        if path and not ("settings" in path[:-1] and path[path.index("settings") + 1 :])
    ]
    numbers = [
        path
        for path, value in nodes(data)
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    schema = list(declared(kind, data)) if kind else []
    operations = ["truncate", "not utf-8", "root", "version", "not finite"]
    if kind:
        operations += ["poison", "wrong type", "delete", "bad integer"]
    else:
        # A version 1 result: its parts the migration reads, whatever their schema.
        everything = [p for p in everything if p[:1] in {("curve",), ("provenance",)}]
        operations += ["poison"]
    operation = draw(st.sampled_from(operations))
    if operation == "truncate":
        # Any cut before the closing brace leaves the object open.
        return operation, raw[: draw(st.integers(0, len(raw.rstrip()) - 1))]
    if operation == "not utf-8":
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]))
        return operation, raw[:at] + junk + raw[at:]
    if operation == "root":
        root = draw(st.sampled_from([[data], [], "text", 2, None, True]))
        return f"root {root!r:.20}", text(root)
    if operation == "version":
        version = draw(st.sampled_from([0, -1, 4, 99, 2**70, "2", 2.0, True, None, [2]]))
        return f"schema_version {version!r}", text(replaced(data, ("schema_version",), version))
    if operation == "not finite":
        path = draw(st.sampled_from(numbers))
        value = draw(st.sampled_from([math.nan, math.inf, -math.inf, HUGE]))
        return f"{value} at {path}", text(replaced(data, path, value))
    if operation == "poison":
        path = draw(st.sampled_from(everything))
        # One level over a list writes an empty list, which a list may be (a calls
        # history's runs emptied was drawn as broken and read, rightly).
        depth = draw(st.integers(2 if isinstance(_get(data, path), list) else 1, 3000))
        return f"{depth} nested lists at {path}", text(replaced(data, path, DEEP), depth)
    if operation == "wrong type":
        path, declared_type, _ = draw(st.sampled_from(schema))
        value = _get(data, path)
        if value is None:
            choices: list[Any] = [12, 1.5, True, [], {}]
        elif isinstance(value, str):
            choices = [12, 1.5, True, False, [], {}]
        elif isinstance(value, int | float):
            choices = ["12", "1.5", "nan", "inf", True, False, [], {}, None]
        else:
            choices = ["text", 12, True, None] + ([[value]] if isinstance(value, dict) else [])
        # Only values the declared type refuses as memgate reads it (strict JSON): 12 is
        # an optional integer's, None an optional field's.
        refused = [c for c in choices if not _accepts(declared_type, c)] or ["text"]
        wrong = draw(st.sampled_from(refused))
        return f"{wrong!r} at {path}", text(replaced(data, path, wrong))
    if operation == "delete":
        path = draw(st.sampled_from([path for path, _, required in schema if required]))
        return f"deleted {path}", text(deleted(data, path))
    ints = [path for path, declared_type, _ in schema if declared_type is int]
    path = draw(st.sampled_from(ints))
    value = draw(st.integers(max_value=-1) | st.integers(min_value=2**63))
    return f"{value} at {path}", text(replaced(data, path, value))


def _get(data: Any, path: Path_) -> Any:
    for key in path:
        data = data[key]
    return data


# --- baseline histories --------------------------------------------------------------


@pytest.fixture(scope="module")
def result_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid result of scenario ``demo`` (the histories' scenario)."""
    path = tmp_path_factory.mktemp("result") / "result.json"
    write_result(make_result(), path)
    return path


@pytest.mark.parametrize("schema", sorted(HISTORIES))
def test_the_histories_fuzzed_below_are_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], schema: str
) -> None:
    (tmp_path / "demo.json").write_bytes(HISTORIES[schema])
    code, out, err = memgate(capsys, "baseline", "show", "demo", "--baselines", tmp_path)
    assert (code, err) == (0, "")
    assert "baseline: demo" in out


@pytest.mark.parametrize("schema", sorted(HISTORIES))
@FUZZ
@given(data=st.data(), command=st.sampled_from(["show", "compare", "record"]))
def test_a_broken_history_is_bad_input_and_never_written_over(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    result_path: Path,
    schema: str,
    data: st.DataObject,
    command: str,
) -> None:
    what, broken = data.draw(broken_json(HISTORIES[schema], History), label="mutation")
    history = tmp_path / "demo.json"
    history.write_bytes(broken)
    args: dict[str, tuple[str | Path, ...]] = {
        "show": ("baseline", "show", "demo"),
        "compare": ("compare", result_path),
        "record": ("baseline", "record", result_path),
    }
    outcome = memgate(capsys, *args[command], "--baselines", tmp_path)
    assert_bad_input(outcome, history, what)
    assert history.read_bytes() == broken, what


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # Found by the fuzzing above: each was read as a valid history (or crashed).
        (lambda d: d.update(schema_version=True), "no integer schema_version"),
        (lambda d: d["runs"][0].update(peak_heap=-5), "runs.0.peak_heap: -5 is negative"),
        (lambda d: d["runs"][0].update(peak_heap=10**400), "a 401-digit number is too large"),
        (lambda d: d["runs"][0]["heap"].update(slope="nan"), "runs.0.heap.slope: Input should"),
        (lambda d: d["runs"][0]["heap"].update(slope=True), "runs.0.heap.slope: Input should"),
        (lambda d: d["runs"][0].update(peak_heap="12"), "runs.0.peak_heap: Input should"),
        (lambda d: d.update(reference="0123456789abcdef"), "reference: '0123456789abcdef' is"),
        (lambda d: d["runs"].append(d["runs"][0]), "is recorded twice"),
        # Well-typed nonsense, as a hand edit makes it.
        (lambda d: d["runs"][0]["heap"].update(p_value=-3), "runs.0.heap.p_value: -3.0 is not a"),
        (lambda d: d["runs"][0].update(recorded_at="yesterday"), "runs.0.recorded_at: 'yesterday'"),
        # JSON can escape half a surrogate pair: no Unicode text, it cannot be printed.
        (lambda d: d["runs"][0]["provenance"].update(commit="\ud800"), "Invalid JSON"),
    ],
)
def test_history_regressions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, message: str
) -> None:
    data = json.loads(HISTORIES["schema 2"])
    edit(data)
    (tmp_path / "demo.json").write_text(json.dumps(data))
    outcome = memgate(capsys, "baseline", "show", "demo", "--baselines", tmp_path)
    assert_bad_input(outcome, tmp_path / "demo.json")
    assert message in outcome[2]


def test_nan_in_a_history_is_not_valid_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(HISTORIES["schema 2"])
    data["runs"][0]["heap"]["slope"] = math.nan  # json.dumps writes NaN; json.loads read it
    (tmp_path / "demo.json").write_text(json.dumps(data))
    outcome = memgate(capsys, "baseline", "show", "demo", "--baselines", tmp_path)
    assert_bad_input(outcome, tmp_path / "demo.json")
    assert "baseline is not valid JSON: NaN is not a number" in outcome[2]


def test_a_scenario_name_cannot_leave_the_baselines_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "demo.json").write_bytes(HISTORIES["schema 2"])
    code, out, err = memgate(
        capsys, "baseline", "show", "../" + tmp_path.name + "/demo", "--baselines", tmp_path
    )
    assert (code, out) == (2, "")
    assert (
        err
        == f"memgate: error: '../{tmp_path.name}/demo' is not a scenario name (or NAME/SERVICE)\n"
    )


# --- result files --------------------------------------------------------------------


@pytest.fixture(scope="module")
def v2_result(result_path: Path) -> bytes:
    return result_path.read_bytes()


def test_the_results_fuzzed_below_are_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], v2_result: bytes
) -> None:
    for name, raw in (("v1.json", V1_RESULT), ("v2.json", v2_result)):
        (tmp_path / name).write_bytes(raw)
        code, out, err = memgate(capsys, "compare", tmp_path / name, "--baselines", tmp_path)
        assert (code, err) == (1, "")  # both leak, with no history: a failure, not bad input
        assert "FAIL" in out


@FUZZ
@given(
    data=st.data(),
    version=st.sampled_from([1, 2]),
    command=st.sampled_from(["compare", "report", "record"]),
)
def test_a_broken_result_is_bad_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    v2_result: bytes,
    data: st.DataObject,
    version: int,
    command: str,
) -> None:
    raw, kind = (V1_RESULT, None) if version == 1 else (v2_result, RunResult)
    what, broken = data.draw(broken_json(raw, kind), label="mutation")
    path = tmp_path / "result.json"
    path.write_bytes(broken)
    args = {
        "compare": ("compare", path),
        "report": ("report", path, "--format", "json"),
        "record": ("baseline", "record", path),
    }[command]
    assert_bad_input(memgate(capsys, *args, "--baselines", tmp_path / "b"), path, what)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("version", "edit", "message"),
    [
        # Found by the fuzzing above: each was read as a valid result.
        (1, lambda d: d["curve"]["points"].reverse(), "curve.points.1.requests: fewer than"),
        (2, lambda d: d.update(schema_version=True), "no integer schema_version"),
        (2, lambda d: d["load"].update(measured_requests=-1), "load.measured_requests: -1 is"),
        (2, lambda d: d["sites"][0]["trend"].update(slope="inf"), "sites.0.trend.slope: Input"),
        (2, lambda d: d["curve"].update(warmup_index=True), "curve.warmup_index: Input"),
        (2, lambda d: d["scenario"].update(name="../../x"), "scenario.name: '../../x' is not"),
        (2, lambda d: d["settings"].update(gate={"keep": 1}), "settings.gate.keep: Input"),
        # Well-typed nonsense, as a hand edit makes it.
        (2, lambda d: d["scenario"].update(service="a/b"), "scenario.service: 'a/b' is not"),
        (2, lambda d: d["sites"][0]["trend"].update(p_value=-3), "sites.0.trend.p_value: -3"),
        (
            2,
            lambda d: d["analysis"]["heap"]["trend"].update(p_value=1.5),
            "analysis.heap.trend.p_value: 1.5 is not a probability",
        ),
    ],
)
def test_result_regressions(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    v2_result: bytes,
    version: int,
    edit: Any,
    message: str,
) -> None:
    data = json.loads(V1_RESULT if version == 1 else v2_result)
    edit(data)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    outcome = memgate(capsys, "compare", path, "--baselines", tmp_path)
    assert_bad_input(outcome, path)
    assert message in outcome[2]


# --- function-level histories (calls/) -----------------------------------------------

TEST_ID = "tests/test_app.py::test_handler"


@pytest.fixture(scope="module")
def calls_history(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    store = CallsStore(tmp_path_factory.mktemp("calls"))
    for growth in (0.5, 1.5, -0.25):
        run = CallsRun("2026-01-01T00:00:00+00:00", None, "key", growth, -1.0, 2.0, 4096, 100, 10)
        store.record(TEST_ID, run)
    return store.path(TEST_ID).read_bytes()


def test_the_calls_history_fuzzed_below_is_valid(tmp_path: Path, calls_history: bytes) -> None:
    store = CallsStore(tmp_path)
    store.root.mkdir()
    store.path(TEST_ID).write_bytes(calls_history)
    history = store.load(TEST_ID)
    assert history is not None
    assert [run.growth_per_call for run in history.runs] == [0.5, 1.5, -0.25]


@FUZZ
@given(data=st.data())
def test_a_broken_calls_history_is_bad_input(
    tmp_path: Path, calls_history: bytes, data: st.DataObject
) -> None:
    what, broken = data.draw(broken_json(calls_history, CallsHistory), label="mutation")
    store = CallsStore(tmp_path)
    store.root.mkdir(exist_ok=True)
    path = store.path(TEST_ID)
    path.write_bytes(broken)
    run = CallsRun("2026-01-02T00:00:00+00:00", None, "key", 0.0, -1.0, 1.0, 4096, 100, 10)
    for attempt in (lambda: store.load(TEST_ID), lambda: store.record(TEST_ID, run)):
        with pytest.raises(InputError) as caught:
            attempt()
        assert len(str(caught.value).splitlines()) == 1, what
        assert str(caught.value).startswith(f"{path}: "), what
    assert path.read_bytes() == broken


# --- scenario files ------------------------------------------------------------------

SCENARIO: dict[str, Any] = {
    "name": "fuzz",
    "description": "a scenario to break",
    "service": {
        "command": "python -m http.server {port} --bind 127.0.0.1",
        "cwd": ".",
        "env": {"A": "1"},
        "health_url": "http://127.0.0.1:{port}/",
        "startup_timeout": 30,
        "stop_timeout": 15.0,
    },
    "load": {
        "locustfile": "locustfile.py",
        "user_classes": ["Visitor"],
        "users": 4,
        "spawn_rate": 4.0,
        "warmup_requests": 500,
        "requests": 100,
        "duration": 60.0,
        "time_limit": 600.0,
    },
    "profile": {"trace_python_allocators": True, "native": False, "follow_fork": False},
    "budgets": {
        "max_peak_heap": "64MiB",
        "max_peak_rss": 100_000_000,
        "max_growth_per_request": 4.0,
        "forbid_shapes": ["leak"],
    },
    "gate": {"keep": 20},
}

VALID_KINDS = {
    ("name",): {str},
    ("description",): {str},
    ("service", "command"): {str, list},
    ("service", "cwd"): {str},
    ("service", "env"): {dict},
    ("service", "health_url"): {str},
    ("service", "startup_timeout"): {int, float},
    ("service", "stop_timeout"): {int, float},
    ("load", "locustfile"): {str},
    ("load", "user_classes"): {list},
    ("load", "users"): {int},
    ("load", "spawn_rate"): {int, float},
    ("load", "warmup_requests"): {int},
    ("load", "requests"): {int},
    ("load", "duration"): {int, float},
    ("load", "time_limit"): {int, float},
    ("profile", "trace_python_allocators"): {bool},
    ("profile", "native"): {bool},
    ("profile", "follow_fork"): {bool},
    ("budgets", "max_peak_heap"): {int, float, str},  # a number of bytes or "64MiB"
    ("budgets", "max_peak_rss"): {int, float, str},
    ("budgets", "max_growth_per_request"): {int, float},
    ("budgets", "forbid_shapes"): {list},
    ("gate", "keep"): {int},
}
"""The TOML types each key takes (``int`` also stands for a float in a float key)."""

ONE_OF_EACH_TYPE: list[Any] = [
    "text",
    7,
    2.5,
    True,
    datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.UTC),
    datetime.date(1979, 5, 27),
    [1, 2],
    ["a", 2],
    {"key": "value"},
]

seconds_out_of_range = st.floats(max_value=0) | st.floats(min_value=86_400, exclude_min=True)
IMPOSSIBLE: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("service", "startup_timeout"): seconds_out_of_range,
    ("service", "stop_timeout"): seconds_out_of_range,
    ("load", "users"): st.integers(max_value=0) | st.integers(min_value=10_001),
    ("load", "spawn_rate"): st.floats(max_value=0) | st.sampled_from([math.inf]),
    ("load", "warmup_requests"): st.integers(max_value=-1) | st.integers(min_value=10**9 + 1),
    ("load", "requests"): st.integers(max_value=0) | st.integers(min_value=10**9 + 1),
    # At or past the time limit (600 s), which includes the warm-up.
    ("load", "duration"): seconds_out_of_range | st.floats(min_value=600, max_value=86_400),
    ("load", "time_limit"): seconds_out_of_range | st.floats(min_value=1e-9, max_value=60),
    ("budgets", "max_peak_heap"): st.integers(max_value=-1) | st.sampled_from(["-5MiB", "lots"]),
    ("budgets", "max_growth_per_request"): st.floats(max_value=-1e-9),
    ("gate", "keep"): st.integers(max_value=1) | st.integers(min_value=1001),
}
"""Numbers each key must refuse (NaN is refused everywhere, below)."""

NOT_LOOPBACK = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9-]{0,15}(\.[a-z]{2,6}){0,2}\Z").filter(
        lambda host: host != "localhost"
    ),
    st.ip_addresses(v=4).map(str).filter(lambda ip: ip != "127.0.0.1"),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]").filter(lambda ip: ip != "[::1]"),
)


@st.composite
def broken_scenario(draw: st.DrawFn) -> tuple[str, str | bytes]:
    """A scenario file no loader may accept, and what is wrong with it."""
    data = copy.deepcopy(SCENARIO)
    operation = draw(
        st.sampled_from(
            [
                "bytes",
                "text",
                "truncated",
                "unknown key",
                "wrong type",
                "impossible",
                "nan",
                "missing",
                "unbounded",
                "health url",
                "nul",
                "name",
            ]
        )
    )
    if operation == "bytes":
        return operation, draw(st.binary(max_size=200))
    if operation == "text":
        return operation, draw(st.text(max_size=200))
    if operation == "truncated":
        # Cut inside the service or load table: it loses a required key or its end.
        whole = toml(data)
        return operation, whole[: draw(st.integers(0, whole.index('\n"profile"') - 1))]
    if operation == "unknown key":
        table = draw(st.sampled_from([None, "service", "load", "profile", "budgets", "gate"]))
        where = data if table is None else data[table]
        key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in where))
        where[key] = draw(st.sampled_from(ONE_OF_EACH_TYPE))
        return f"unknown key {key!r} in {table}", toml(data)
    if operation == "wrong type":
        key = draw(st.sampled_from(sorted(VALID_KINDS)))
        kinds = VALID_KINDS[key]
        value = draw(st.sampled_from([v for v in ONE_OF_EACH_TYPE if type(v) not in kinds]))
        _set(data, key, value)
        return f"{value!r} for {key}", toml(data)
    if operation in ("impossible", "nan"):
        if operation == "impossible":
            key = draw(st.sampled_from(sorted(IMPOSSIBLE)))
            value = draw(IMPOSSIBLE[key])
        else:
            numbers = [k for k, kinds in VALID_KINDS.items() if float in kinds]
            key = draw(st.sampled_from(numbers))
            value = math.nan
        _set(data, key, value)
        return f"{value!r} for {key}", toml(data)
    if operation == "missing":
        key = draw(
            st.sampled_from(
                [
                    ("service",),
                    ("load",),
                    ("service", "command"),
                    ("service", "health_url"),
                    ("load", "locustfile"),
                ]
            )
        )
        parent = data if len(key) == 1 else data[key[0]]
        del parent[key[-1]]
        return f"no {key}", toml(data)
    if operation == "unbounded":
        del data["load"]["requests"], data["load"]["duration"]
        return operation, toml(data)
    if operation == "health url":
        scheme = draw(st.sampled_from(["http", "https"]))
        url = f"{scheme}://{draw(NOT_LOOPBACK)}:{{port}}/"
        url = draw(
            st.sampled_from(
                [url, "ftp://127.0.0.1:{port}/", "127.0.0.1:{port}", "file:///etc/passwd"]
            )
        )
        data["service"]["health_url"] = url
        return url, toml(data)
    if operation == "nul":
        # A NUL reaches no command line, path or environment.
        key = draw(
            st.sampled_from(
                [
                    ("service", "command"),
                    ("service", "cwd"),
                    ("load", "locustfile"),
                    ("service", "env", "A"),
                ]
            )
        )
        value = _get(data, key)
        at = draw(st.integers(0, len(value)))
        _set(data, key, value[:at] + "\0" + value[at:])
        return f"NUL in {key}", toml(data)
    # A name names files: letters, digits, '.', '_' and '-' only.
    bad = draw(st.characters(exclude_characters="._-", exclude_categories=["L", "N", "Cs"]))
    name = draw(st.text(alphabet="ab._-", max_size=5))
    at = draw(st.integers(0, len(name)))
    data["name"] = name[:at] + bad + name[at:]
    return f"name {data['name']!r}", toml(data)


def _accepts(declared_type: Any, value: Any) -> bool:
    """Whether a field of ``declared_type`` reads ``value`` as memgate reads its files."""
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(declared_type).validate_json(json.dumps(value), strict=True)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def _set(data: Any, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


@pytest.fixture
def scenario_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a locustfile; a scenario that loads would fail the test, not run."""
    (tmp_path / "locustfile.py").write_text("from locust import HttpUser\n")

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scenario was accepted")

    monkeypatch.setattr(gate.run.orchestrate, "run_all", must_not_run)
    return tmp_path


def test_the_scenario_fuzzed_below_is_valid(scenario_folder: Path) -> None:
    path = scenario_folder / "scenario.toml"
    path.write_text(toml(SCENARIO))
    (scenario,) = load_scenario(path).members()
    assert scenario.load.requests == 100 and scenario.budgets.max_peak_heap == 64 * 2**20


@FUZZ
@given(broken=broken_scenario())
@example(broken=("NaN spawn rate", toml(SCENARIO).replace("4.0", "nan", 1)))
@example(broken=("infinite spawn rate", toml(SCENARIO).replace("4.0", "inf", 1)))
@example(broken=("users = true", toml(SCENARIO).replace('"users" = 4', '"users" = true')))
@example(broken=("requests as text", toml(SCENARIO).replace("= 100,", '= "100",')))
@example(broken=("duration past the time limit", toml(SCENARIO).replace("60.0", "900.0")))
@example(broken=("NUL in cwd", toml(SCENARIO).replace('"cwd" = "."', '"cwd" = ".\\u0000"')))
@example(broken=("key with a line break", toml(SCENARIO).replace('"gate"', '"ga\\nte"')))
@example(broken=("empty program", toml(SCENARIO).replace('"python -m', '"\\"\\" python -m')))
def test_a_broken_scenario_is_bad_input(
    scenario_folder: Path, capsys: pytest.CaptureFixture[str], broken: tuple[str, str | bytes]
) -> None:
    what, content = broken
    path = scenario_folder / "scenario.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    assert_bad_input(memgate(capsys, "run", path, "--quiet"), path, what)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "load: required key is missing"),
        (lambda p: p.mkdir(), "cannot read scenario: Is a directory"),
        (lambda p: None, "no such scenario file"),
        (lambda p: p.write_bytes(toml(SCENARIO).encode("utf-16")), "scenario is not UTF-8 text"),
        (lambda p: p.write_bytes(b"name = '\xe9t\xe9'\n"), "scenario is not UTF-8 text"),
        (lambda p: p.symlink_to(p), "cannot read scenario: Too many levels of symbolic links"),
        (
            lambda p: p.write_text(toml(SCENARIO).replace('"."', '"' + "a" * 5000 + '"')),
            "load.locustfile or service.cwd: File name too long",
        ),
    ],
)
def test_files_that_are_no_scenario(
    scenario_folder: Path, capsys: pytest.CaptureFixture[str], make: Any, message: str
) -> None:
    path = scenario_folder / "scenario.toml"
    make(path)
    outcome = memgate(capsys, "run", path, "--quiet")
    assert_bad_input(outcome, path)
    assert message in outcome[2]


def test_a_line_break_in_a_key_stays_on_one_line(
    scenario_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_folder / "scenario.toml"
    path.write_text(toml({**SCENARIO, "a\nb\u2028c": 1}))
    outcome = memgate(capsys, "run", path, "--quiet")
    assert_bad_input(outcome, path)
    assert outcome[2] == f"memgate: error: {path}: a\\nb\\u2028c: unknown key\n"
