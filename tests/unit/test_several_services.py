"""Scenarios of several services: the format, each service's view, their ports, and the
baseline history each service keeps."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from gate.baseline import BaselineStore, settings_hash
from gate.errors import ExitCode, InputError
from gate.merge import parse_report
from gate.scenario import PORT_OF, SERVICE_NAME_PATTERN, load_scenario, port_variable
from gate.service import fill_port
from tests.support import FUZZ, MINIMAL, make_result, toml

TWO = """
[services.worker]
command = "python -m http.server {port} --bind 127.0.0.1"
health_url = "http://127.0.0.1:{port}/"

[services.api]
command = "python -m http.server {port} --bind 127.0.0.1"
env = { WORKER_URL = "http://127.0.0.1:{port:worker}/jobs" }
health_url = "http://127.0.0.1:{port}/"

[services.api.budgets]
max_peak_heap = "64MiB"

[services.api.profile]
native = true

[load]
target = "api"
locustfile = "locustfile.py"
requests = 100

[budgets]
max_growth_per_request = 8
"""

EXTRA = """
[services.{}]
command = "python -m http.server {{port}}"
health_url = "http://127.0.0.1:{{port}}/"
"""


def test_each_service_has_its_own_view(write_scenario: Any) -> None:
    scenario = load_scenario(write_scenario(TWO, "shop.toml"))
    worker, api = scenario.members()
    assert [worker.key, api.key] == ["shop/worker", "shop/api"]
    assert [worker.service_name, api.service_name] == ["worker", "api"]
    assert api.service.env == {"WORKER_URL": "http://127.0.0.1:{port:worker}/jobs"}
    # A service's own budgets and profile replace the scenario's; the others keep them.
    assert (worker.budgets.max_growth_per_request, worker.budgets.max_peak_heap) == (8, None)
    assert (api.budgets.max_growth_per_request, api.budgets.max_peak_heap) == (None, 64 * 2**20)
    assert (worker.profile.native, api.profile.native) == (False, True)
    assert worker.load.target == api.load.target == "api"


def test_a_one_service_scenario_is_its_own_only_member(write_scenario: Any) -> None:
    (only,) = load_scenario(write_scenario(MINIMAL)).members()
    assert only.key == "scenario"
    assert only.service_name is None


def test_environment_overrides_reach_every_service(write_scenario: Any) -> None:
    scenario = load_scenario(write_scenario(TWO)).with_overrides(env={"LEAK": "64"})
    assert [m.service.env["LEAK"] for m in scenario.members()] == ["64", "64"]
    assert scenario.members()[1].service.env["WORKER_URL"].endswith("{port:worker}/jobs")


def test_the_target_defaults_to_the_only_service(write_scenario: Any) -> None:
    one = TWO.split("[services.api]")[0] + '[load]\nlocustfile = "locustfile.py"\nrequests = 9\n'
    (only,) = load_scenario(write_scenario(one)).members()
    assert (only.key, only.load.target) == ("scenario/worker", "worker")


def test_a_shared_load_setting_does_not_change_a_one_service_hash(write_scenario: Any) -> None:
    # load.target is new: left unset it must not make older histories incomparable.
    scenario = load_scenario(write_scenario(MINIMAL))
    settings = scenario.members()[0].settings.model_dump(mode="json")
    without = dict(settings, load={k: v for k, v in settings["load"].items() if k != "target"})
    assert settings_hash(settings) == settings_hash(without)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('target = "api"\n', ""), "load.target: required with several"),
        (lambda t: t.replace('target = "api"', 'target = "db"'), "'db' is not a service"),
        (lambda t: t.replace("{port:worker}", "{port:wrker}"), "{port:wrker} names no service"),
        (lambda t: t.replace("[services.worker]", "[services.'a b']"), "'a b' is not a name"),
        (lambda t: t.replace("[services.worker]", "[services.'../x']"), "'../x' is not a name"),
        # A folder named like a file of the run's (OUT/NAME/load.jsonl), or like another
        # service on a case-insensitive file system or in the environment.
        (
            lambda t: t.replace("[services.worker]", "[services.'load.jsonl']"),
            "'load.jsonl' is not a name",
        ),
        (lambda t: t + EXTRA.format("Worker"), "'worker' and 'Worker' are too alike"),
        (
            lambda t: t + EXTRA.format("WORKER_") + EXTRA.format("worker-"),
            "'WORKER_' and 'worker-' are too alike (one folder or MEMGATE_PORT_WORKER_ for both)",
        ),
        (
            lambda t: t.replace(
                'health_url = "http://127.0.0.1:{port}/"\n\n[services.api]',
                'health_url = "http://127.0.0.1:{port}/?{port:api}"\n\n[services.api]',
            ),
            "{port:NAME} cannot be used here",
        ),
        (lambda t: 'name = "calls"\n' + t, "name: 'calls' is kept for function-level histories"),
        (lambda t: MINIMAL + t.split("[load]")[0], "set [service], or [services.NAME]"),
        (lambda t: t.replace("native = true", "nativ = true"), "profile.nativ: unknown key"),
        (
            lambda t: t.replace("[services.worker]", "[services.worker]\nservice_name = 'x'"),
            "services.worker.service_name: unknown key",
        ),
        (lambda t: "ports_of = ['a']\n" + t, "ports_of: unknown key"),
        (
            lambda t: t.replace("[services.api]\n", "[services.api]\ncwd = 'nowhere'\n"),
            "services.api.cwd: no such folder",
        ),
    ],
)
def test_a_bad_scenario_of_several_services_is_one_line(
    write_scenario: Any, edit: Any, expected: str
) -> None:
    path = write_scenario(edit(TWO))
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    assert caught.value.exit_code is ExitCode.BAD_INPUT
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_one_service_scenario_cannot_name_other_ports(write_scenario: Any) -> None:
    text = MINIMAL.replace("--bind 127.0.0.1", "--bind 127.0.0.1 {port:db}")
    with pytest.raises(InputError, match=r"\{port:db\} names no service.*one \[service\]"):
        load_scenario(write_scenario(text))


def test_ports_fill_in() -> None:
    ports = {"worker": 8001, "api": 8002}
    text = "http://127.0.0.1:{port:worker}/ on {port}, {port:api}"
    assert fill_port(text, 9000, ports) == "http://127.0.0.1:8001/ on 9000, 8002"
    assert fill_port("{port}", 9000) == "9000"
    assert port_variable("worker") == "MEMGATE_PORT_WORKER"
    assert port_variable("jobs.v2-beta") == "MEMGATE_PORT_JOBS_V2_BETA"


# --- baselines and reports ----------------------------------------------------------


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


def test_a_merged_report_names_the_service() -> None:
    doc = {
        "report_version": 1,
        "scenario": {"name": "shop", "path": "shop.toml", "sha256": "", "service": "worker"},
        "verdict": "pass",
        "compared_runs": 3,
        "findings": [],
        "run": {"shape": "flat", "provenance": {"env_key": "linux"}},
    }
    assert parse_report(doc, source="report.json").scenario == "shop/worker"
    doc["scenario"] = {"name": "shop", "path": "shop.toml", "sha256": ""}
    assert parse_report(doc, source="report.json").scenario == "shop"


NAMES = st.sampled_from(
    ["api", "worker", "API", "a-b", "a_b", "w.2", "x y", "", "calls"]
) | st.text(max_size=12)
"""Service names: good ones, ones alike, ones refused, and anything."""
GOOD = st.sampled_from(["api", "worker"])


# Most drawings are refused; enough load to check what a loaded scenario promises.
@settings(FUZZ, max_examples=max(FUZZ.max_examples, 400))
@given(
    names=st.lists(GOOD | GOOD | NAMES, min_size=1, max_size=4),
    wanted=GOOD | NAMES,
    target=st.none() | GOOD | NAMES,
)
@example(names=["api"], wanted="{", target=None)  # "{port:{}": text, not a placeholder
@example(names=["api"], wanted="\n", target=None)  # said as an escape, on one line
def test_any_names_load_or_are_one_line_of_bad_input(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], wanted: str, target: str | None
) -> None:
    folder = tmp_path_factory.mktemp("names")
    (folder / "locustfile.py").write_text("")
    services = {
        name: {
            "command": ["python", "app.py", "{port}", f"{{port:{wanted}}}"],
            "health_url": "http://127.0.0.1:{port}/",
        }
        for name in names
    }
    load: dict[str, Any] = {"locustfile": "locustfile.py", "requests": 10}
    if target is not None:
        load["target"] = target
    path = folder / "fuzzed.toml"
    path.write_text(toml({"services": services, "load": load}))
    try:
        scenario = load_scenario(path)
    except InputError as exc:
        assert exc.exit_code is ExitCode.BAD_INPUT
        assert "\n" not in str(exc) and str(exc).startswith(f"{path}: ")
        return
    event("loaded")
    members = scenario.members()
    keys = [m.key for m in members]
    assert len(set(keys)) == len(keys) == len(set(names))
    assert all(re.fullmatch(SERVICE_NAME_PATTERN, m.service_name or "") for m in members)
    assert members[0].load.target in set(names)
    # Every {port:NAME} left names a service ("{port:{}" is no placeholder, only text).
    command = " ".join(members[0].service.command)
    assert {m.group(1) for m in PORT_OF.finditer(command)} <= set(names)
