"""The repository's own files that tests run or read: the demo scenario and service, the
fixtures, and a minimal scenario to write beside a trivial locustfile (the
``write_scenario`` fixture)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_SCENARIO = REPO / "scenarios" / "demo.toml"
DEMO_APP = REPO / "examples" / "demo_service" / "app.py"
FIXTURES = REPO / "tests" / "fixtures"
"""Result and history files of earlier memgate versions, kept as they were written."""


def planted_leak_line(app: Path = DEMO_APP) -> int:
    """The line of an example service that carries the ``# planted leak`` comment."""
    for number, line in enumerate(app.read_text().splitlines(), start=1):
        if line.rstrip().endswith("# planted leak") and not line.lstrip().startswith("#"):
            return number
    raise AssertionError(f"{app} has no '# planted leak' line")


MINIMAL = """
[service]
command = "python -m http.server {port} --bind 127.0.0.1"
health_url = "http://127.0.0.1:{port}/"

[load]
locustfile = "locustfile.py"
requests = 100
"""
