"""Property tests: hypothesis settings for the fuzzing tests, and values written as TOML
(to build scenario files, broken or not)."""

from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any

from hypothesis import HealthCheck, settings

FUZZ = settings(
    max_examples=int(os.environ.get("MEMGATE_FUZZ_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""Settings of the fuzzing tests: ``MEMGATE_FUZZ_EXAMPLES=2000`` runs more examples than
CI does."""


def toml(value: Any) -> str:
    """``value`` as TOML: a document of ``key = value`` lines with inline tables."""
    if isinstance(value, dict):
        return "".join(f"{toml_key(key)} = {toml_value(item)}\n" for key, item in value.items())
    raise TypeError(value)


def toml_key(key: str) -> str:
    """``key`` quoted, as TOML reads it back whatever it holds."""
    return json.dumps(key).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (inline tables and arrays for dicts and lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's (ASCII only); TOML also refuses a raw DEL.
        return json.dumps(value).replace("\x7f", "\\u007f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(value)
