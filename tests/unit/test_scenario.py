from __future__ import annotations

from pathlib import Path

import pytest

from gate.errors import ExitCode, InputError
from gate.scenario import load_scenario
from tests.support import DEMO_SCENARIO, MINIMAL, REPO


def test_demo_scenario_loads_with_resolved_paths() -> None:
    (scenario,) = load_scenario(DEMO_SCENARIO).members()
    assert scenario.name == "demo"
    assert scenario.service.command[:3] == ["python", "-m", "uvicorn"]
    assert scenario.service_cwd == REPO
    assert scenario.locustfile == REPO / "examples" / "demo_service" / "locustfile.py"
    assert scenario.profile.trace_python_allocators is True
    assert len(scenario.sha256) == 64


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
