from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from gate.errors import ExitCode, InputError
from gate.scenario import (
    PORT_OF,
    SERVICE_NAME_PATTERN,
    hidden_value,
    load_scenario,
    run_settings,
    stored_settings,
)
from gate.scenario.sections import ENV_PARTS
from tests.support import DEMO_SCENARIO, FUZZ, MINIMAL, REPO, toml


def test_demo_scenario_loads_with_resolved_paths() -> None:
    (scenario,) = load_scenario(DEMO_SCENARIO).members()
    assert scenario.name == "demo"
    assert scenario.service.command[:3] == ["python", "-m", "uvicorn"]
    assert scenario.service_cwd == REPO
    assert scenario.locustfile == REPO / "examples" / "demo_service" / "locustfile.py"
    assert scenario.profile.trace_python_allocators is True
    assert len(scenario.sha256) == 64


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").rglob("*.toml")), ids=lambda p: p.stem)
def test_every_bundled_scenario_loads_and_names_files_that_exist(path: Path) -> None:
    for scenario in load_scenario(path).members():
        assert scenario.locustfile.is_file()
        assert scenario.service_cwd.is_dir()
        # Every examples.* module the command names (python -m M, uvicorn M:app) exists.
        modules = [arg for arg in scenario.service.command if arg.startswith("examples.")]
        assert modules, scenario.service.command
        for module in modules:
            stem = scenario.service_cwd / module.split(":")[0].replace(".", "/")
            assert stem.with_suffix(".py").is_file() or (stem / "__init__.py").is_file()


def test_defaults_and_string_command_split(write_scenario) -> None:
    (scenario,) = load_scenario(write_scenario(MINIMAL)).members()
    assert scenario.service.command == [
        "python",
        "-m",
        "http.server",
        "{port}",
        "--bind",
        "127.0.0.1",
    ]
    assert scenario.load.users == 4
    assert scenario.load.warmup_requests == 500
    assert scenario.load.duration is None
    assert scenario.load.processes == 1
    assert scenario.profile.native is False


def test_load_processes_up_to_the_users(write_scenario) -> None:
    text = MINIMAL.replace("requests = 100", "requests = 100\nusers = 2\nprocesses = 2")
    assert load_scenario(write_scenario(text)).load.processes == 2


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace("requests = 100", "requests = -3"),
            "load.requests: Input should be greater than or equal to 1",
        ),
        (
            lambda t: t.replace("requests = 100", 'requests = "many"'),
            "load.requests: Input should be a valid integer",
        ),
        (
            lambda t: t.replace("requests = 100", "requests = 100\nuserz = 3"),
            "load.userz: unknown key",
        ),
        (
            lambda t: t.replace('health_url = "http://127.0.0.1:{port}/"', ""),
            "service.health_url: required key is missing",
        ),
        (
            lambda t: t.replace("127.0.0.1:{port}/", "example.com:{port}/"),
            "service.health_url: host 'example.com' is not loopback",
        ),
        (lambda t: t.replace("requests = 100", ""), "load: set requests or duration (or both)"),
        (
            lambda t: t.replace('locustfile = "locustfile.py"', 'locustfile = "nope.py"'),
            "load.locustfile: no such file",
        ),
        (
            lambda t: t + "\n[profile]\nnative = 3\n",
            "profile.native: Input should be a valid boolean",
        ),
        (lambda t: t.replace("[load]", "[load"), "not valid TOML"),
        (lambda t: "sha256 = 'x'\n" + t, "sha256: unknown key"),
        (lambda t: "name = '..'\n" + t, "name: String should match pattern"),
        (
            lambda t: t + "\n[budgets]\nforbid_shapes = ['leek']\n",
            "budgets.forbid_shapes.0: Input should be",
        ),
        (
            lambda t: t + "\n[budgets]\nmax_peak_heap = 'lots'\n",
            "budgets.max_peak_heap: could not parse",
        ),
        (
            lambda t: t + "\n[gate]\nkeep = 1\n",
            "gate.keep: Input should be greater than or equal to 2",
        ),
        (
            lambda t: t + '\n[gate]\nenv_match = ["system", "cpu"]\n',
            "gate.env_match.1: Input should be 'system', 'machine', 'python', 'memray', 'cpus'"
            " or 'recording'",
        ),
        (
            lambda t: t + '\n[gate]\nenv_match = "cpus"\n',
            "gate.env_match: Input should be a valid list",
        ),
        (lambda t: t.replace("{port}/", "{port}x/"), "service.health_url: port must be a number"),
        (
            lambda t: t + '\n[profile]\nfollow_fork = "workers"\n',
            "profile.follow_fork: Input should be a valid boolean",
        ),
        (
            lambda t: t.replace("requests = 100", "requests = 100\nprocesses = 0"),
            "load.processes: Input should be greater than or equal to 1",
        ),
        (
            lambda t: t.replace("requests = 100", "requests = 100\nprocesses = 1.5"),
            "load.processes: Input should be a valid integer",
        ),
        (
            lambda t: t.replace("requests = 100", "requests = 100\nprocesses = 65\nusers = 100"),
            "load.processes: Input should be less than or equal to 64",
        ),
        (
            lambda t: t.replace("requests = 100", "requests = 100\nusers = 2\nprocesses = 3"),
            "load.processes: 3 processes for 2 users: every Locust worker needs a user",
        ),
    ],
)
def test_invalid_scenarios_name_file_and_field(write_scenario, edit, expected) -> None:
    path = write_scenario(edit(MINIMAL))
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.toml")


def test_overrides_replace_bounds_and_merge_env(write_scenario) -> None:
    scenario = load_scenario(
        write_scenario(MINIMAL.replace("requests = 100", "requests = 100\nduration = 30"))
    )
    by_requests = scenario.with_overrides(requests=7, env={"A": "1"}, warmup=0)
    assert (by_requests.load.requests, by_requests.load.duration) == (7, None)
    assert by_requests.load.warmup_requests == 0
    assert by_requests.members()[0].service.env == {"A": "1"}
    by_time = scenario.with_overrides(duration=5.0)
    assert (by_time.load.requests, by_time.load.duration) == (None, 5.0)
    assert scenario.with_overrides() == scenario


def test_budgets_and_gate_settings(write_scenario) -> None:
    text = MINIMAL + "\n[budgets]\nmax_peak_heap = '64MiB'\nforbid_shapes = ['leak']\n"
    text += "\n[gate]\nkeep = 5\n"
    (scenario,) = load_scenario(write_scenario(text)).members()
    assert scenario.budgets.max_peak_heap == 64 * 2**20
    assert [s.value for s in scenario.budgets.forbid_shapes] == ["leak"]
    assert scenario.gate.keep == 5
    assert scenario.gate.env_match == ["system", "machine", "python", "memray", "cpus", "recording"]


def test_gate_env_match_drops_parts_of_the_environment(write_scenario) -> None:
    text = (
        MINIMAL + '\n[gate]\nenv_match = ["system", "machine", "python", "memray", "recording"]\n'
    )
    (scenario,) = load_scenario(write_scenario(text)).members()
    assert "cpus" not in scenario.gate.env_match
    # A result keeps the setting, and a result read back gives it again.
    _, gate = run_settings({"gate": scenario.gate.model_dump()})
    assert gate.env_match == scenario.gate.env_match
    assert run_settings({})[1].env_match == list(ENV_PARTS)


# --- scenarios of several services ----------------------------------------------------

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
@example(names=["\n"], wanted="\x00", target=None)  # a name in an error's key, too
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


@pytest.mark.parametrize(
    "nested", ["x = " + "[" * 5000 + "]" * 5000, "x = " + "{a=" * 3000 + "1" + "}" * 3000]
)
def test_a_scenario_nested_too_deeply_is_bad_input(write_scenario, nested: str) -> None:
    path = write_scenario(nested + "\n" + MINIMAL)
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    assert str(caught.value) == f"{path}: not valid TOML: nested too deeply"


def test_a_soak_stopped_on_leak_needs_the_heap_read_while_the_load_runs(write_scenario) -> None:
    live = write_scenario(MINIMAL.replace("[load]", "[load]\nstop_on_leak = true"))
    assert load_scenario(live).doc.load.stop_on_leak
    counted = write_scenario(
        MINIMAL.replace("[load]", "[load]\nstop_on_leak = true")
        + '\n[profile]\ncapture = "counters"\n'
    )
    assert load_scenario(counted).doc.profile.capture == "counters"
    path = write_scenario(
        MINIMAL.replace("[load]", "[load]\nstop_on_leak = true") + '\n[profile]\ncapture = "file"\n'
    )
    with pytest.raises(InputError, match=r'load\.stop_on_leak: needs profile\.capture = "live"'):
        load_scenario(path)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("30", 30.0),
        ('"30s"', 30.0),
        ('"1.5m"', 90.0),
        ('"2 min"', 120.0),
        ('"500ms"', 0.5),
        ('"1h"', 3600.0),
    ],
)
def test_durations_are_read_with_their_units(written: str, expected: float, write_scenario) -> None:
    text = MINIMAL.replace(
        "requests = 100", f'requests = 100\nduration = {written}\ntime_limit = "2h"'
    )
    load = load_scenario(write_scenario(text)).load
    assert (load.duration, load.time_limit) == (expected, 7200.0)


@pytest.mark.parametrize("written", ['"30 parsecs"', '"soon"', '"-5s"', '""', "true"])
def test_a_duration_that_is_not_one_is_bad_input(written: str, write_scenario) -> None:
    text = MINIMAL.replace("requests = 100", f"requests = 100\nduration = {written}")
    with pytest.raises(InputError) as caught:
        load_scenario(write_scenario(text))
    assert "load.duration" in str(caught.value) and "\n" not in str(caught.value)


def test_result_json_keeps_environment_values_hashed_but_those_shown(write_scenario) -> None:
    text = MINIMAL.replace("[load]", 'shown_env = ["LOG_LEVEL"]\n\n[load]')
    scenario = load_scenario(write_scenario(text)).with_overrides(
        env={"API_TOKEN": "ghp_secret", "LOG_LEVEL": "debug"}
    )
    (member,) = scenario.members()
    stored = stored_settings(member.settings)
    assert stored["service"]["env"] == {
        "API_TOKEN": hidden_value("API_TOKEN", "ghp_secret"),
        "LOG_LEVEL": "debug",
    }
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", stored["service"]["env"]["API_TOKEN"])
    # Another value tells the settings apart; the service itself got the value.
    assert hidden_value("API_TOKEN", "ghp_other") != hidden_value("API_TOKEN", "ghp_secret")
    assert member.service.env["API_TOKEN"] == "ghp_secret"


@pytest.mark.parametrize(
    ("profile", "capture"),
    [
        ("", "sampled"),
        ("native = true", "live"),
        ("flamegraph = true", "live"),
        ("trace_python_allocators = false", "live"),
        ('capture = "counters"', "counters"),
        ('capture = "live"\nnative = false', "live"),
    ],
)
def test_the_default_capture_samples_unless_the_profile_asks_for_memrays_traces(
    write_scenario, profile: str, capture: str
) -> None:
    (scenario,) = load_scenario(write_scenario(f"{MINIMAL}\n[profile]\n{profile}\n")).members()
    assert scenario.profile.capture == capture


def test_a_flame_graph_asked_for_on_the_command_line_traces_an_unset_capture(
    write_scenario,
) -> None:
    scenario = load_scenario(write_scenario(MINIMAL))
    (traced,) = scenario.with_overrides(flamegraph=True).members()
    assert (traced.profile.capture, traced.profile.flamegraph) == ("live", True)
    sampled = load_scenario(write_scenario(f'{MINIMAL}\n[profile]\ncapture = "sampled"\n'))
    with pytest.raises(InputError, match="flamegraph: needs memray's traces"):
        sampled.with_overrides(flamegraph=True)


def test_sampling_asked_for_with_native_frames_is_refused(write_scenario) -> None:
    text = f'{MINIMAL}\n[profile]\ncapture = "sampled"\nnative = true\n'
    with pytest.raises(InputError, match="native: needs memray's traces"):
        load_scenario(write_scenario(text))
