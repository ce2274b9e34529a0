"""The agent's census of the garbage collector's objects (``gate/agent/census.py``, which
the agent loads by path), taken in this process on objects made here, its taking and
writing by the agent (``gate.agent.memgate_agent``), and its analysis
(``gate.analysis.retention``)."""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import functools
import json
import os
import subprocess
import threading
import time
import types
from typing import Any, ClassVar

import pytest

from gate.agent import census as census_module
from gate.agent import memgate_agent as agent
from gate.analysis.retention import MIN_GROWTH, CensusRecord, retention
from tests.unit.test_agent import PYTHONS

retained_here: list[bytes] = []


class Holder:
    def __init__(self) -> None:
        self.entries: collections.OrderedDict[int, dict[str, Any]] = collections.OrderedDict()


holder = Holder()


@functools.cache
def cached(i: int) -> list[int]:
    return [i]


def _closure() -> Any:
    seen: list[int] = []

    def remember(i: int) -> None:
        seen.append(i)

    return remember


remember = _closure()
plain: dict[str, str] = {f"k{i}": "v" for i in range(20)}  # untracked: plain values only


class Registry:
    entries: ClassVar[list[int]] = []  # a class attribute


class Leaked:
    pass


def _grow(count: int, offset: int) -> None:
    for i in range(offset, offset + count):
        plain[f"r{i}"] = "v"
        Registry.entries.append(i)
        retained_here.append(bytes(8))
        holder.entries[i] = {"i": [i]}
        cached(i)
        remember(i)


def _roundtrip(taken: dict[str, Any]) -> dict[str, Any]:
    """As the agent writes it and reads it back (JSON)."""
    return json.loads(json.dumps(taken))


def test_the_containers_that_grew_are_named_by_the_path_from_a_root() -> None:
    _grow(100, 0)
    start = _roundtrip(census_module.light_census())  # the start's, as the agent takes it
    assert start["objects"] > 1000 and start["seconds"] > 0
    assert [id(retained_here), "list", len(retained_here)] in start["containers"]
    _grow(500, 1000)
    end = census_module.census(start)
    grown = {g["path"]: (g["type"], g["before"], g["after"]) for g in end["grown"]}
    module = __name__
    assert grown[f"{module}.retained_here"] == ("list", 100, 600)
    assert grown[f"{module}.holder.entries"] == ("collections.OrderedDict", 100, 600)
    assert grown[f"{module}.cached"] == ("functools._lru_cache_wrapper", 100, 600)
    assert grown[f"{module}.remember.seen (closure)"] == ("list", 100, 600)
    # A dict the collector does not track (plain values), a class's attribute.
    assert grown[f"{module}.plain"] == ("dict", 120, 620)
    assert grown[f"{module}.Registry.entries"] == ("list", 100, 600)
    # The lru_cache's own dict is told as its wrapper, once.
    assert not [path for path in grown if "lru_cache" in path]
    # The start counts every object the collector tracks; the end, those reached.
    assert start["types"]["dict"] >= 100 and end["types"]["dict"] >= 600
    retained_here.clear()
    holder.entries.clear()


def test_objects_only_native_code_refers_to_are_counted_as_orphans() -> None:
    start = _roundtrip(census_module.light_census())
    for _ in range(300):
        kept = Leaked()
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(kept))  # a reference never given back
    del kept
    end = census_module.census(start)
    name = f"{__name__}.Leaked"
    assert start["types"].get(name, 0) == 0 and end["orphans"][name] == 300
    assert name not in end["types"]  # no root reaches them


def test_another_threads_locals_are_a_root() -> None:
    ready, done = threading.Event(), threading.Event()

    def hold() -> None:
        in_flight = [bytes(4) for _ in range(200)]
        ready.set()
        done.wait()
        assert in_flight

    thread = threading.Thread(target=hold, name="holder")
    start = _roundtrip(census_module.light_census())
    thread.start()
    ready.wait()
    try:
        end = census_module.census(start)
    finally:
        done.set()
        thread.join()
    paths = [g["path"] for g in end["grown"]]
    assert any(p.startswith("thread 'holder': hold (") and p.endswith(".in_flight") for p in paths)


def test_a_census_stops_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(census_module, "CENSUS_MAX_OBJECTS", 100)
    taken = census_module.census()
    assert taken["truncated"] and taken["objects"] == 100


@pytest.mark.parametrize("python", PYTHONS)
def test_the_census_runs_in_every_python_the_agent_supports(python: str) -> None:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import census as a; "
        "s = a.light_census(); keep = [0] * 100; e = a.census(json.loads(json.dumps(s))); "
        "print(json.dumps([g['path'] for g in e['grown']]))"
    )
    folder = str(census_module.__file__).rpartition("/")[0]
    done = subprocess.run([python, "-c", code, folder], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "__main__.keep" in json.loads(done.stdout)


def _record(pid: int, label: str, t: float, **kw: Any) -> CensusRecord:
    return CensusRecord(
        pid=pid,
        label=label,
        t=t,
        objects=kw.get("objects", 1000),
        seconds=0.1,
        truncated=False,
        types=kw.get("types", {}),
        orphans=kw.get("orphans", {}),
        grown=kw.get("grown", ()),
    )


def test_what_grew_with_the_requests_is_named_and_the_rest_left_out() -> None:
    starts = [_record(7, "start", 10.0, types={"dict": 1000, "Job": 10}, orphans={"Buf": 5})]
    ends = [
        _record(
            7,
            "end",
            20.0,
            types={"dict": 1020, "Job": 4010},  # dict: +20, too few to name
            orphans={"Buf": 2005},
            grown=(("list", 10, 5010, "app._kept"), ("dict", 0, 40, "app._small")),
        )
    ]
    found = retention(starts, ends, lambda t: t * 500.0, load_start=5.0, main_pid=7)
    assert found is not None
    assert found.requests == 5000.0
    named = [(r.kind, r.what, r.after - r.before) for r in found.retained]
    assert named == [
        ("container", "app._kept", 5000),
        ("native", "Buf", 2000),
        ("type", "Job", 4000),
    ]
    assert found.retained[0].per_request == pytest.approx(1.0)
    assert [(c.label, c.t) for c in found.censuses] == [("start", 5.0), ("end", 15.0)]


def test_growth_too_slow_for_the_requests_is_not_named() -> None:
    starts = [_record(7, "start", 0.0)]
    ends = [_record(7, "end", 100.0, grown=(("list", 0, MIN_GROWTH * 2, "app._slow"),))]
    # 100 items over 100,000 requests: 0.001 per request.
    found = retention(starts, ends, lambda t: t * 1000.0, load_start=0.0, main_pid=7)
    assert found is not None and found.retained == ()


def test_no_census_pair_is_no_retention() -> None:
    assert retention([], [_record(7, "end", 1.0)], float, load_start=0.0, main_pid=7) is None
    assert (
        retention(
            [_record(7, "start", 1.0)], [_record(8, "end", 2.0)], float, load_start=0.0, main_pid=7
        )
        is None
    )


def test_the_light_census_leaves_nothing_behind() -> None:
    """The start's census runs during the load: none of it outlives it, and it makes no
    frame object (which would live as long as its frame)."""
    import tracemalloc

    census_module.light_census()  # its first call's one-off costs (the interned names)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        taken = census_module.light_census()
        assert taken["objects"] > 1000
        del taken
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # CPython keeps up to 80 freed lists for reuse (56 bytes each): those may stay.
    assert after - before < 8192


def test_a_census_that_fails_is_answered_left_out_and_said(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gate.service.agent_files import read_censuses

    def broken() -> dict[str, Any]:
        raise RuntimeError("a container that cannot be counted")

    monkeypatch.setattr(agent, "_census", [types.SimpleNamespace(light_census=broken)])
    agent._take_census(str(tmp_path), "start")  # answered: memgate waits no longer
    written = tmp_path / agent.CENSUS_FILE.format(label="start", pid=os.getpid())
    assert json.loads(written.read_text())["error"].startswith("RuntimeError: a container")
    (tmp_path / "census.start.123.json").write_text("{not json")
    assert read_censuses(tmp_path, "start") == (
        [],
        {
            123: "is unreadable",
            os.getpid(): "failed: RuntimeError: a container that cannot be counted",
        },
    )
    monkeypatch.setattr(agent, "_census", [census_module])
    agent._take_census(str(tmp_path), "start")
    (found,), failed = read_censuses(tmp_path, "start")
    assert (found.pid, found.label) == (os.getpid(), "start") and found.objects > 1000
    assert failed == {123: "is unreadable"}


def test_the_end_census_is_preceded_by_a_point_of_the_heap(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent writes the last point itself, before the census's pause: memgate waits
    for no other to know the process ran through the load."""
    heap = tmp_path / "heap.jsonl"
    descriptor = os.open(heap, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    monkeypatch.setattr(agent, "_heap_fd", [descriptor])
    monkeypatch.setattr(agent, "_heap", [types.SimpleNamespace(fields=lambda: ', "heap": 5')])
    times: list[float] = []

    def census(start: object, collect: object) -> dict[str, Any]:
        times.append(time.time())
        return {"pid": os.getpid(), "t": times[0], "objects": 1}

    monkeypatch.setattr(agent, "_census", [types.SimpleNamespace(census=census)])
    try:
        agent._take_census(str(tmp_path), "end")
    finally:
        os.close(descriptor)
    (point,) = [json.loads(line) for line in heap.read_text().splitlines()]
    assert point["heap"] == 5 and point["t"] <= times[0]


def test_a_process_that_takes_no_census_writes_its_last_point_when_the_end_is_asked(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    heap = tmp_path / "heap.jsonl"
    descriptor = os.open(heap, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    monkeypatch.setattr(agent, "_heap_fd", [descriptor])
    monkeypatch.setattr(agent, "_heap", [types.SimpleNamespace(fields=lambda: ', "heap": 5')])
    writing = threading.Thread(target=agent._point_at_end, args=(str(tmp_path),), daemon=True)
    try:
        writing.start()
        time.sleep(3 * agent.CENSUS_POLL_S)
        assert heap.read_text() == ""  # not before the end's census is asked
        (tmp_path / agent.CENSUS_REQUEST.format(label="end")).write_text("")
        writing.join(timeout=10)
    finally:
        os.close(descriptor)
    (point,) = [json.loads(line) for line in heap.read_text().splitlines()]
    assert point["heap"] == 5


def test_censuses_that_failed_or_never_came_are_a_retention_with_problems() -> None:
    said = ("the end census of process 7 failed: MemoryError",)
    found = retention(
        [_record(7, "start", 0.0)], [], lambda t: t, load_start=0.0, main_pid=7, problems=said
    )
    assert found is not None and found.retained == () and found.problems == said
    # None asked for (census = false), none taken: no retention at all.
    assert retention([], [], lambda t: t, load_start=0.0, main_pid=7) is None


def test_objects_frozen_at_the_start_are_not_counted_as_growth() -> None:
    starts = [_record(7, "start", 0.0, types={"dict": 10})]
    starts = [dataclasses.replace(starts[0], frozen=5000)]
    ends = [
        _record(
            7,
            "end",
            10.0,
            types={"dict": 5010},
            grown=(("list", 0, 800, "app._frozen"), ("list", 100, 900, "app._kept")),
        )
    ]
    found = retention(starts, ends, lambda t: t * 100.0, load_start=0.0, main_pid=7)
    assert found is not None
    assert [(r.kind, r.what) for r in found.retained] == [("container", "app._kept")]


def test_the_main_processs_missing_census_is_a_problem_a_recycled_forks_is_not() -> None:
    from gate.run.assemble import census_problems

    start, end = _record(7, "start", 0.0), _record(7, "end", 9.0)
    fork = _record(8, "start", 1.0)  # recycled before the end: no end census, no problem
    none: dict[str, dict[int, str]] = {"start": {}, "end": {}}
    assert census_problems(True, 7, [start, fork], [end], none) == ()
    assert census_problems(True, 7, [start], [], none) == ("process 7 answered no end census",)
    assert census_problems(True, 7, [], [], none) == ("process 7 answered no start census",)
    failed = {"start": {}, "end": {7: "failed: MemoryError", 8: "is unreadable"}}
    assert census_problems(True, 7, [start, fork], [], failed) == (
        "the end census of process 7 failed: MemoryError",
        "the end census of process 8 is unreadable",
    )
    assert census_problems(False, 7, [], [], none) == ()


SOURCE = """\
import collections

_retained = []
_by_id = {}
_queue = collections.deque()


class Registry:
    _items = []

    def register(self, item):
        self._items.append(item)

    @classmethod
    def register_all(cls, items):
        cls._items.extend(items)

    @staticmethod
    def not_mine(self, item):
        self._items.append(item)


class Other:
    def keep(self, item):
        self._items.append(item)


def handle(request):
    payload = request.get_json()
    _retained.append(payload)
    _by_id[request.id] = payload
    _queue.appendleft(payload)


def shadowed(_retained):
    _retained.append(1)


def local():
    _retained = []
    _retained.append(2)
    other._retained.append(3)
    request._by_id[1] = 2
    _retained_too.append(4)


def rebound():
    global _retained
    _retained = _retained + [5]
    _retained += [6]


_retained.insert(0, "at import")
"""


def test_the_lines_that_add_to_a_module_global_are_found_by_name() -> None:
    """Flask's leak was named at ``request.get_json()``, not the ``append`` that keeps it."""
    from gate.analysis.retention import adding_lines

    assert adding_lines(SOURCE, ["_retained"]) == [
        (30, "handle"),
        (50, "rebound"),
        (53, "<module>"),
    ]
    # An item assigned in a dict; a deque added to at its left.
    assert adding_lines(SOURCE, ["_by_id"]) == [(31, "handle")]
    assert adding_lines(SOURCE, ["_queue"]) == [(32, "handle")]


def test_a_local_or_a_parameter_of_the_globals_name_is_not_the_global() -> None:
    from gate.analysis.retention import adding_lines

    lines = [line for line, _ in adding_lines(SOURCE, ["_retained"])]
    for hidden in (36, 41, 42):  # a parameter, a local, another object's attribute
        assert hidden not in lines
    assert adding_lines(SOURCE, ["_by_id"]) == [(31, "handle")]  # not request._by_id
    assert adding_lines(SOURCE, ["_retained_too"]) == [(44, "local")]
    assert adding_lines(SOURCE, ["_nothing"]) == []
    assert adding_lines("def broken(:\n", ["_retained"]) == []


def test_a_class_attribute_is_added_to_through_self_and_cls_in_its_methods() -> None:
    from gate.analysis.retention import adding_lines

    assert adding_lines(SOURCE, ["Registry", "_items"]) == [
        (12, "register"),
        (16, "register_all"),
    ]  # not a static method's parameter, nor another class's self


def test_an_objects_attribute_is_added_to_in_its_class_or_any_when_unknown() -> None:
    """The demo's unbounded cache: ``examples.demo_service.app._cache._entries``."""
    from gate.analysis.retention import adding_lines

    made = "class Cache:\n    def put(self, k, v):\n        self._entries[k] = v\n"
    other = "class Other:\n    def put(self, k, v):\n        self._entries[k] = v\n"
    assert adding_lines(made + other + "_cache = Cache()\n", ["_cache", "_entries"]) == [(3, "put")]
    unknown = made + other + "_cache = {'a': Cache()}['a']\n"
    assert adding_lines(unknown, ["_cache", "_entries"]) == [(3, "put"), (6, "put")]
    # A list under a key of a global dict: ``app._by_user['alice']``.
    keyed = "_by_user = {}\ndef f(u, x):\n    _by_user[u].append(x)\n    _by_user[u] = []\n"
    assert adding_lines(keyed, ["_by_user"], 1) == [(3, "f")]


def test_the_demos_planted_leak_is_the_line_that_adds_to_retained() -> None:
    from gate.analysis.retention import adding_lines, container_path, in_module
    from tests.support import DEMO_APP, planted_leak_line

    path = "examples.demo_service.app._retained"
    assert container_path(path) == (("examples", "demo_service", "app", "_retained"), 0)
    assert in_module(path, "examples/demo_service/app.py")
    assert in_module(path, "/srv/checkout/examples/demo_service/app.py")
    assert not in_module(path, "examples/demo_service/locustfile.py")
    assert not in_module(path, "other/app.py")
    found = adding_lines(DEMO_APP.read_text(), ["_retained"])
    assert found == [(planted_leak_line(), "__call__")]
    for unnamed in ("thread 'MainThread': serve (app.py:3)", "app.f (closure)", "app"):
        assert container_path(unnamed) is None
