"""The repository's own files that tests run or read: the demo scenario and service, the
fixtures, and a minimal scenario to write beside a trivial locustfile (the
``write_scenario`` fixture)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEMO_SCENARIO = REPO / "scenarios" / "demo.toml"
DEMO_APP = REPO / "examples" / "demo_service" / "app.py"
FIXTURES = REPO / "tests" / "fixtures"
"""Result and history files of earlier memgate versions, kept as they were written."""


def committed_schema(name: str, generated: dict[str, Any]) -> dict[str, Any]:
    """``docs/NAME``, a JSON Schema generated from memgate's types (``MEMGATE_UPDATE_GOLDEN=1``
    writes ``generated`` there first), once it is checked to be ``generated``: a change
    to the types that is not in the file fails. Compared without titles and descriptions,
    which pydantic versions word differently (2.11 leaves out dataclasses' docstrings):
    fields, types and bounds must agree."""
    path = REPO / "docs" / name
    if os.environ.get("MEMGATE_UPDATE_GOLDEN"):
        path.write_text(json.dumps(generated, indent=2, sort_keys=True) + "\n")
    committed: dict[str, Any] = json.loads(path.read_text())
    assert _unworded(committed) == _unworded(generated), f"docs/{name} is not the types' schema"
    return committed


def _unworded(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _unworded(v) for k, v in schema.items() if k not in ("title", "description")}
    if isinstance(schema, list):
        return [_unworded(v) for v in schema]
    return schema


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
