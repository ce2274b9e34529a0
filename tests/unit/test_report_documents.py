"""report.json and the merged document: their committed JSON Schemas are the types
memgate writes them through, a real report and a real merge are valid by them, and
broken ones are not."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from gate.report.documents import merged_schema, report_schema
from gate.report.json import render_json, render_merged_json
from tests.support import committed_schema, leak_report, merged_three


def test_a_real_report_is_valid_by_the_committed_schema() -> None:
    schema = committed_schema("report.schema.json", report_schema())
    written = json.loads(render_json(leak_report()))
    jsonschema.validate(written, schema)
    assert "packages" not in written["run"]["provenance"]  # the result keeps it
    assert written["sites"][0]["frame"]["file"] == "examples/demo_service/app.py"


def _broken(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """What a reader of report.json must be told is not one."""
    out = []
    for path, value in (
        (("verdict",), "failed"),
        (("report_version",), "1"),
        (("run", "heap_growth", "slope"), "256 B"),
        (("sites", 0, "frame", "line"), 54.5),
        (("findings", 0, "severity"), "maybe"),
        (("run", "load", "failure_reasons"), {"GET /": 3}),
    ):
        broken = copy.deepcopy(doc)
        *parents, last = path
        where: Any = broken
        for key in parents:
            where = where[key]
        where[last] = value
        out.append(broken)
    out.append({k: v for k, v in doc.items() if k != "findings"})
    return out


def test_a_broken_report_is_not_valid() -> None:
    schema = committed_schema("report.schema.json", report_schema())
    for broken in _broken(json.loads(render_json(leak_report()))):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_a_real_merge_is_valid_by_the_committed_schema() -> None:
    schema = committed_schema("merged-report.schema.json", merged_schema())
    written = json.loads(render_merged_json(merged_three()))
    jsonschema.validate(written, schema)
    assert [s["scenario"] for s in written["scenarios"]] == ["demo", "soak", "api"]
    broken = {**written, "counts": {"fail": "one"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
