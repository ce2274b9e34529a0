"""report.json files as ``memgate merge`` reads them: the real 256 B/request leak report
renamed and given another verdict, written into an artifact's folder, parsed, and three of
them merged."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from gate import merge
from gate.merge import parse_report
from gate.report.formats import Format, render
from tests.support.reports import leak_report

ENV = "Linux-x86_64-py3.11-memray1.20-2cpu"
"""The environment of :func:`leak_doc` and, unless told, of :func:`doc`."""


@functools.cache
def _leak_json() -> str:
    return render(leak_report(), Format.JSON)


def leak_doc() -> dict[str, Any]:
    """A real report.json: the 256 B/request leak against three clean runs (fail)."""
    doc: dict[str, Any] = json.loads(_leak_json())
    doc["run"]["provenance"]["env_key"] = ENV
    return doc


def doc(name: str, verdict: str, env: str = ENV) -> dict[str, Any]:
    """That report renamed, with the findings that give ``verdict``."""
    out = leak_doc()
    out["scenario"]["name"] = name
    out["run"]["provenance"]["env_key"] = env
    flags = [f for f in out["findings"] if f["severity"] == "flag"]
    out["findings"] = {"fail": out["findings"], "flag": flags, "pass": []}[verdict]
    out["verdict"] = verdict
    return out


def write(folder: Path, data: Any, name: str = "report.json") -> Path:
    """``data`` (text, or a value written as JSON) as ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def parsed(data: dict[str, Any], source: str = "x/report.json") -> merge.ScenarioReport:
    """One report as the merge reads it, said to come from ``source``."""
    return parse_report(data, source=source)


def merged_three() -> merge.Merged:
    """A pass (api), the leak's failure (demo) and a flag on another environment (soak)."""
    return merge.merge(
        [
            parsed(doc("api", "pass"), "art/api/report.json"),
            parsed(leak_doc(), "art/demo/report.json"),
            parsed(doc("soak", "flag", env="Darwin-arm64-py3.12"), "art/soak/report.json"),
        ]
    )
