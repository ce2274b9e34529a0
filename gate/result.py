"""``result.json``: write a :class:`RunResult` and read one back, validated.

The schema is the dataclasses of ``gate.model``; ``schema_version`` changes whenever a
field is renamed, removed or changes meaning (adding an optional field does not). Older
versions will be migrated on read (1 is the first), newer ones are refused.
Documented in ``docs/result-schema.md``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gate._files import read_input, write_atomic
from gate.errors import InputError
from gate.model import RunResult

SCHEMA_VERSION = 1


@functools.cache
def _adapter() -> TypeAdapter[RunResult]:
    return TypeAdapter(RunResult)


def dumps(result: RunResult) -> bytes:
    return _adapter().dump_json(result, indent=2) + b"\n"


def write_result(result: RunResult, path: Path) -> None:
    write_atomic(path, dumps(result))


def read_result(path: Path) -> RunResult:
    """Read and validate a result file; :class:`InputError` with one line if it is bad."""
    raw = read_input(path, "result")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    return parse_result(data, source=str(path))


def parse_result(data: Any, *, source: str) -> RunResult:
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
        raise InputError(f"{source}: not a memgate result (no integer schema_version)")
    version = data["schema_version"]
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{source}: schema_version {version} is newer than this memgate"
            f" understands ({SCHEMA_VERSION}); upgrade memgate"
        )
    try:
        return _adapter().validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InputError(f"{source}: {where}: {first['msg']}") from None
