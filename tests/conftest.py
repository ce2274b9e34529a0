from __future__ import annotations

from pathlib import Path

import pytest

# The helpers in tests.support assert as tests do: a failure shows pytest's detailed
# message (register before anything imports them).
pytest.register_assert_rewrite("tests.support")

REPO = Path(__file__).resolve().parent.parent
DEMO_SCENARIO = REPO / "scenarios" / "demo.toml"
DEMO_APP = REPO / "examples" / "demo_service" / "app.py"


def planted_leak_line(app: Path = DEMO_APP) -> int:
    """The line of an example service that carries the ``# planted leak`` comment."""
    for number, line in enumerate(app.read_text().splitlines(), start=1):
        if line.rstrip().endswith("# planted leak") and not line.lstrip().startswith("#"):
            return number
    raise AssertionError(f"{app} has no '# planted leak' line")


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


MINIMAL = """
[service]
command = "python -m http.server {port} --bind 127.0.0.1"
health_url = "http://127.0.0.1:{port}/"

[load]
locustfile = "locustfile.py"
requests = 100
"""
