"""Fixtures any test may ask for; shared helpers that are no fixtures are in tests.support."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The helpers in tests.support assert as tests do: a failure shows pytest's detailed
# message (register before anything imports them).
pytest.register_assert_rewrite("tests.support")

# The services under test run in the Python their PATH finds, as for a user who has
# activated the project's virtual environment: this one's (memray, uvicorn, gunicorn).
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])


@pytest.fixture
def write_scenario(tmp_path: Path):
    """Write a scenario file into a temporary folder beside a trivial locustfile."""
    (tmp_path / "locustfile.py").write_text(
        "from locust import HttpUser, task\n\n"
        "class Visitor(HttpUser):\n"
        "    @task\n"
        "    def health(self):\n"
        "        self.client.get('/health')\n"
    )

    def write(text: str, name: str = "scenario.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every integration and e2e test is slow: ``pytest -m "not slow"`` is the fast tier
    (the unit tests but the few marked slow), under two minutes on two cores."""
    for item in items:
        if item.get_closest_marker("integration") or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.slow)
