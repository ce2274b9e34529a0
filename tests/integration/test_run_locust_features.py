"""Locustfiles as Locust's users write them, under the real Locust: tags, a
``LoadTestShape``, the locustfile's own command-line options, a host with a path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gate.errors import InputError
from gate.run.orchestrate import run_scenario
from gate.scenario import load_scenario
from tests.support import run_file, server

pytestmark = pytest.mark.integration

LOCUSTFILE = """
import json, os
from locust import HttpUser, LoadTestShape, constant, events, tag, task

SEEN = {"users": 0}


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--greeting", default="hello")


@events.test_stop.add_listener
def _report(environment, **kwargs):
    with open(os.environ["SEEN_FILE"], "w") as out:
        json.dump(SEEN, out)


class Visitor(HttpUser):
    wait_time = constant(0.001)

    @tag("read")
    @task
    def read(self):
        SEEN["users"] = max(SEEN["users"], self.environment.runner.user_count)
        self.client.get("/read?" + self.environment.parsed_options.greeting)

    @tag("write")
    @task
    def write(self):
        self.client.get("/write")
"""

SHAPE = """

class Ramp(LoadTestShape):
    def tick(self):
        return (3, 3) if self.get_run_time() < 120 else None
"""


def _scenario(tmp_path: Path, locustfile: str, load: str) -> Path:
    scenario = server(tmp_path)
    (tmp_path / "locustfile.py").write_text(textwrap.dedent(locustfile))
    text = scenario.read_text().replace("users = 2", "users = 1")
    scenario.write_text(text.replace("[load]\n", "[load]\n" + textwrap.dedent(load), 1))
    return scenario


def test_tags_a_shape_options_and_a_host_with_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEEN_FILE", str(tmp_path / "seen.json"))
    scenario = _scenario(
        tmp_path,
        LOCUSTFILE + SHAPE,
        """\
        tags = ["read"]
        host = "http://127.0.0.1:{port}/api"
        options = { greeting = "hi" }
        """,
    )
    result = run_scenario(load_scenario(scenario), tmp_path / "out")
    names = {e.name for e in result.load.endpoints}
    assert names == {"/api/read?hi"}  # only the tagged task; the host's path; the option
    # The shape's 3 users ran, not the scenario's one; the scenario's bounds measured.
    assert (tmp_path / "seen.json").read_text() == '{"users": 3}'
    assert result.load.stop_reason == "requests" and result.load.measured_requests >= 300


@pytest.mark.parametrize(
    ("locustfile", "load", "said"),
    [
        (LOCUSTFILE + SHAPE + SHAPE.replace("Ramp", "Other"), "", "2 LoadTestShape classes"),
        (
            LOCUSTFILE,
            'options = { nope = "1" }\n',
            "[load] options: unrecognized arguments: --nope=1",
        ),
        (
            # argparse's guess ("Did you mean '--version'?") named no option of the scenario's.
            LOCUSTFILE,
            'options = { api-version = "2" }\n',
            "[load] options: unrecognized arguments: --api-version=2 (the locustfile declares",
        ),
    ],
    ids=["two shapes", "unknown option", "unknown option like one of Locust's"],
)
def test_a_locustfile_the_scenario_cannot_run_is_bad_input(
    tmp_path: Path, locustfile: str, load: str, said: str
) -> None:
    scenario = _scenario(tmp_path, locustfile, load)
    with pytest.raises(InputError) as caught:
        run_scenario(load_scenario(scenario), tmp_path / "out")
    assert said in str(caught.value) and "\n" not in str(caught.value)


PHANTOM_USER = """
from locust import User, constant, task


class Phantom(User):
    wait_time = constant(0.001)

    @task
    def pretend(self):
        self.environment.events.request.fire(
            request_type="GET", name="/x", response_time=1, response_length=0,
            exception=None, context={},
        )
"""


@pytest.mark.parametrize("processes", [1, 2], ids=["one process", "distributed"])
def test_requests_with_no_url_are_not_the_services_load(tmp_path: Path, processes: int) -> None:
    """Issue 25, case 4: a custom ``User`` that fires request events itself, with no URL,
    never reaches the service; its requests "succeed". Such a load is refused as one that
    misses the service (it was measured as the service's load, exit 0)."""
    scenario = server(tmp_path)  # 2 users: one a Locust worker when distributed
    (tmp_path / "locustfile.py").write_text(PHANTOM_USER)
    text = scenario.read_text().replace("[load]\n", f"[load]\nprocesses = {processes}\n", 1)
    scenario.write_text(text)
    message = run_file(tmp_path, scenario)
    assert "requests did not go to the service under test (" in message
    assert " to an unknown place (no URL))" in message
