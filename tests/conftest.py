"""Fixtures any test may ask for; shared helpers that are no fixtures are in tests.support."""

from __future__ import annotations

from pathlib import Path

import pytest

# The helpers in tests.support assert as tests do: a failure shows pytest's detailed
# message (register before anything imports them).
pytest.register_assert_rewrite("tests.support")


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
