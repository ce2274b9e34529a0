"""The history store: records, trims, accepts with an audit trail, refuses bad files
without touching them, and loses nothing to concurrent or crashing writers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.baseline import BaselineStore
from gate.errors import InputError
from gate.model import RunResult
from gate.result import read_result
from gate.scenario import load_scenario
from gate.spacing import thin
from gate.summary import CURVE_KEPT, settings_hash, summarize
from tests.support import DEMO_SCENARIO, MINIMAL, REPO, make_result

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def result_number(n: int) -> RunResult:
    """Distinct results (distinct run ids) of the same scenario."""
    base = make_result()
    return dataclasses.replace(base, load=dataclasses.replace(base.load, requests=1000 + n))


def test_record_appends_and_reads_back(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    assert store.load("demo") is None
    store.record(result_number(1))
    history = store.record(result_number(2))
    assert [r.measured_requests for r in history.runs] == [800, 800]
    assert store.load("demo") == history
    assert json.loads(store.path("demo").read_text())["schema_version"] == 2
    # The run's curve is kept, thinned, first and last points included.
    points = result_number(2).curve.points
    curve = history.runs[-1].curve
    assert len(curve) == len(points) <= CURVE_KEPT
    assert (curve[0].requests, curve[-1].heap) == (points[0].requests, points[-1].heap)
    # Recording the same result again changes nothing.
    assert store.record(result_number(2)) == history


def test_schema_1_history_migrates_and_is_written_back_as_schema_2(tmp_path: Path) -> None:
    """A real history recorded by schema 1 (three clean demo runs, no curves) reads,
    compares and takes a new run; the file is then schema 2 with every old run kept."""
    store = BaselineStore(tmp_path)
    shutil.copy(FIXTURES / "baseline-v1-demo.json", store.path("demo"))
    old = store.load("demo")
    assert old is not None and old.schema_version == 2
    assert [len(r.curve) for r in old.runs] == [0, 0, 0]
    history = store.record(result_number(1))
    written = json.loads(store.path("demo").read_text())
    assert written["schema_version"] == 2
    assert [r["run_id"] for r in written["runs"]][:3] == [r.run_id for r in old.runs]
    assert len(written["runs"][-1]["curve"]) == len(result_number(1).curve.points)
    assert history.runs[:3] == old.runs


def test_thin_keeps_ends_and_spreads_evenly() -> None:
    assert thin(list(range(10)), 20) == list(range(10))
    assert thin(list(range(101)), 5) == [0, 25, 50, 75, 100]
    assert thin(list(range(7)), 2) == [0, 6]


def test_keep_trims_oldest_but_never_the_reference(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.accept(result_number(0), reason="cache added on purpose", who="rm")
    for n in range(1, 6):
        history = store.record(result_number(n), keep=3)
    ids = [r.run_id for r in history.runs]
    assert len(ids) == 3
    assert ids[0] == history.reference == summarize(result_number(0)).run_id
    assert ids[1:] == [summarize(result_number(n)).run_id for n in (4, 5)]


def test_accept_sets_the_reference_and_writes_the_audit_log(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.record(result_number(1))
    history = store.accept(result_number(2), reason="  bigger pool,\n by design ", who="alice")
    assert history.reference == history.runs[-1].run_id
    assert history.comparable() == (history.runs[-1],)
    (entry,) = store.audit("demo")
    assert (entry.who, entry.action, entry.reason) == ("alice", "accept", "bigger pool, by design")
    assert entry.run_id == history.reference
    with pytest.raises(InputError, match="--reason must say why"):
        store.accept(result_number(3), reason="   ", who="alice")


def test_a_version_1_result_can_be_recorded(tmp_path: Path) -> None:
    old = read_result(FIXTURES / "result-v1-leak256.json")
    history = BaselineStore(tmp_path).record(old)
    assert history.runs[0].provenance.env_key.endswith("?cpu")
    assert history.runs[0].sites[0].key == "examples/demo_service/app.py:__call__"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"schema_version": 1, "scenario": "demo", "runs": [', "baseline is not valid JSON"),
        (b"\x00\xff garbage", "baseline is not valid JSON"),
        (b'{"runs": []}', "not a memgate baseline"),
        (b'{"schema_version": 7, "scenario": "demo", "runs": []}', "schema_version 7 is not"),
        (b'{"schema_version": 1, "scenario": "demo", "runs": [{"run_id": 3}]}', "runs.0.run_id"),
        (b'{"schema_version": 1, "scenario": "other", "runs": []}', "holds scenario 'other'"),
    ],
)
def test_a_broken_file_is_reported_and_left_untouched(tmp_path: Path, content, message) -> None:
    store = BaselineStore(tmp_path)
    store.path("demo").write_bytes(content)
    for attempt in (
        lambda: store.load("demo"),
        lambda: store.record(make_result()),
        lambda: store.accept(make_result(), reason="x", who="y"),
    ):
        with pytest.raises(InputError, match=message) as caught:
            attempt()
        assert str(caught.value).startswith(f"{store.path('demo')}: ")
        assert "\n" not in str(caught.value)
    assert store.path("demo").read_bytes() == content
    assert not store.audit_path("demo").exists()


def test_a_crash_while_writing_leaves_the_old_history(tmp_path: Path, monkeypatch) -> None:
    store = BaselineStore(tmp_path)
    store.record(result_number(1))
    before = store.path("demo").read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.record(result_number(2))
    assert store.path("demo").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".demo.lock", "demo.json"]


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.record(result_number(1))
    # A writer killed before its rename leaves its temporary file (the e2e test does it
    # with SIGKILL); another scenario's files, whose name only starts the same, stay.
    left = [".demo.json.k1ll3d_x.tmp", ".demo.audit.jsonl.abcdefgh.tmp"]
    kept = [".demo.x.json.abcdefgh.tmp", ".demo.json.tmp", "demo.json.abcdefgh.tmp"]
    for name in left + kept:
        (tmp_path / name).write_text("{")
    store.record(result_number(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".demo.lock", "demo.json", *kept])


def _append_one(args: tuple[str, int]) -> None:
    root, n = args
    BaselineStore(Path(root)).record(result_number(n), keep=100)


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(8) as pool:
        pool.map(_append_one, [(str(tmp_path), n) for n in range(24)])
    history = BaselineStore(tmp_path).load("demo")
    assert history is not None
    expected = {summarize(result_number(n)).run_id for n in range(24)}
    assert {r.run_id for r in history.runs} == expected


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["record", "accept"]), st.integers(0, 6)), min_size=1, max_size=12
    ),
    st.integers(2, 5),
)
def test_any_sequence_of_writes_keeps_the_history_valid(tmp_path_factory, ops, keep) -> None:
    store = BaselineStore(tmp_path_factory.mktemp("store"))
    accepted = 0
    for action, n in ops:
        if action == "record":
            history = store.record(result_number(n), keep=keep)
        else:
            history = store.accept(result_number(n), reason="ok", who="t", keep=keep)
            accepted += 1
        reread = store.load("demo")
        assert reread == history
        assert len(history.runs) <= keep
        assert len({r.run_id for r in history.runs}) == len(history.runs)
        if history.reference is not None:
            assert history.reference in {r.run_id for r in history.runs}
    assert len(store.audit("demo")) == accepted


def test_site_keys_do_not_depend_on_where_python_lives() -> None:
    from gate.model import Frame
    from gate.summary import site_key

    assert site_key(Frame("f", "examples/app.py", 3)) == "examples/app.py:f"
    venv = Frame("run", "/home/ci/.venv/lib/python3.11/site-packages/uvicorn/main.py", 9)
    other = Frame("run", "/opt/py/lib/python3.11/site-packages/uvicorn/main.py", 12)
    assert site_key(venv) == site_key(other) == "uvicorn/main.py:run"
    stdlib = Frame("dumps", "/root/.pyenv/versions/3.11.7/lib/python3.11/json/__init__.py", 1)
    assert site_key(stdlib) == "json/__init__.py:dumps"
    assert site_key(None) == "(no Python frame)"


def test_keep_below_two_is_refused(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.record(result_number(1))
    with pytest.raises(InputError, match="keep must be at least 2"):
        store.record(result_number(2), keep=0)
    history = store.load("demo")
    assert history is not None and len(history.runs) == 1


def test_an_accept_whose_audit_entry_cannot_be_written_is_undone(tmp_path, monkeypatch) -> None:
    import gate.baseline

    store = BaselineStore(tmp_path)
    store.record(result_number(1))
    before = store.path("demo").read_bytes()
    real = gate.baseline.write_atomic

    def fail_on_audit(path: Path, data: bytes) -> None:
        if path.name.endswith(".audit.jsonl"):
            raise OSError("read-only audit log")
        real(path, data)

    monkeypatch.setattr(gate.baseline, "write_atomic", fail_on_audit)
    with pytest.raises(OSError, match="read-only audit log"):
        store.accept(result_number(2), reason="why", who="me")
    assert store.path("demo").read_bytes() == before


def test_settings_hash_follows_load_and_profile_not_the_service() -> None:
    base = make_result()
    with_env = dataclasses.replace(
        base, settings={**base.settings, "service": {"env": {"DEMO_LEAK_BYTES": "256"}}}
    )
    longer = dataclasses.replace(base, settings={**base.settings, "load": {"users": 8}})
    assert summarize(with_env).settings_sha256 == summarize(base).settings_sha256
    assert summarize(longer).settings_sha256 != summarize(base).settings_sha256


def test_settings_added_later_keep_older_histories_comparable_at_their_default() -> None:
    """``load.processes`` came after the first baselines: at 1 (one Locust process, as
    before) the hash is the one recorded before it existed; more processes are other
    settings."""
    before = {"load": {"users": 4, "requests": 5000}, "profile": {"native": False}}
    one = {**before, "load": {**before["load"], "processes": 1}}
    two = {**before, "load": {**before["load"], "processes": 2}}
    old_way = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert settings_hash(before) == old_way
    assert settings_hash(one) == old_way
    assert settings_hash(two) != old_way
    assert settings_hash({"load": None}) == settings_hash({})


def test_the_committed_demo_baseline_still_compares_with_the_demo_scenario() -> None:
    (scenario,) = load_scenario(DEMO_SCENARIO).members()
    settings = scenario.settings.model_dump(mode="json")
    history = json.loads((REPO / "baselines" / "demo.json").read_text())
    assert {run["settings_sha256"] for run in history["runs"]} == {settings_hash(settings)}


def test_a_shared_load_setting_does_not_change_a_one_service_hash(write_scenario: Any) -> None:
    # load.target is new: left unset it must not make older histories incomparable.
    scenario = load_scenario(write_scenario(MINIMAL))
    settings = scenario.members()[0].settings.model_dump(mode="json")
    without = dict(settings, load={k: v for k, v in settings["load"].items() if k != "target"})
    assert settings_hash(settings) == settings_hash(without)


def test_each_service_keeps_its_history_in_the_scenarios_folder(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    one = make_result()
    api = dataclasses.replace(one, scenario=dataclasses.replace(one.scenario, service="api"))
    worker = dataclasses.replace(api, scenario=dataclasses.replace(api.scenario, service="w-2"))
    name = one.scenario.name
    store.record(one)
    store.record(api)
    store.record(worker)
    assert store.path(f"{name}/api") == tmp_path / "baselines" / name / "api.json"
    assert store.load(f"{name}/api") is not None
    assert store.load(f"{name}/api").scenario == f"{name}/api"  # type: ignore[union-attr]
    assert store.services_of(name) == [f"{name}/api", f"{name}/w-2"]
    assert len(store.load(name).runs) == 1  # type: ignore[union-attr]
    assert store.audit_path(f"{name}/api") == tmp_path / "baselines" / name / "api.audit.jsonl"
    # Files of function-level histories or a stray file are no service's history.
    (tmp_path / "baselines" / name / "tests_app.py_test_x-1234.json").write_text("{}")
    assert store.services_of(name) == [f"{name}/api", f"{name}/w-2"]
    for bad in ("a/b/c", "/api", "a/", "a/../b", "a/.x"):
        with pytest.raises(InputError, match="is not a scenario name"):
            store.path(bad)


def test_a_baselines_path_that_is_a_file_is_bad_input_not_no_history(tmp_path: Path) -> None:
    # It read as "no baseline yet" (a flag, exit 0) and recording failed further on.
    root = tmp_path / "baselines"
    root.write_text("not a folder")
    store = BaselineStore(root)
    with pytest.raises(InputError, match=r"baselines: not a folder"):
        store.load("demo")
    with pytest.raises(InputError, match=r"baselines: not a folder"):
        store.record(make_result())
    assert root.read_text() == "not a folder"


def test_a_reference_set_by_hand_with_no_accept_in_the_audit_log_is_refused(
    tmp_path: Path,
) -> None:
    # A hand-edited history (a leaking run made the reference, no audit line) had
    # memgate compare PASS a 558 B/request leak.
    store = BaselineStore(tmp_path)
    history = store.record(make_result())
    path = store.path("demo")
    edited = json.loads(path.read_text()) | {"reference": history.runs[0].run_id}
    path.write_text(json.dumps(edited))
    with pytest.raises(InputError, match=r"demo.json: reference '[0-9a-f]{16}' was never accepted"):
        store.load("demo")
    # Accepted through memgate, with its audit entry, it is the reference.
    store.path("demo").unlink()
    accepted = store.accept(make_result(), reason="a known cache", who="me", keep=20)
    loaded = store.load("demo")
    assert loaded is not None and loaded.reference == accepted.reference is not None
