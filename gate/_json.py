"""Reading memgate's own JSON files (results, baseline histories) strictly.

These files are written by memgate but may be edited by hand or damaged, and what
they hold decides a build. So: no ``NaN`` or infinities, no ``true`` for ``1`` or
``"12"`` for ``12``, and no negative integer (every integer memgate stores is a count,
a size in bytes, an index or a line number).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

T = TypeVar("T")

INT_LIMIT = 2**63
"""Integers at or past this are no size or count a run could measure."""
MAX_DEPTH = 64
"""Objects and arrays nested deeper than this are in no file memgate writes."""


def loads(raw: bytes) -> Any:
    """``json.loads`` of UTF-8 text, refusing ``NaN``, ``Infinity``, numbers too large for
    a float, strings that are not Unicode text (a lone surrogate, which JSON can escape)
    and nesting deeper than ``MAX_DEPTH``; :class:`ValueError` (or
    :class:`RecursionError` for very deep nesting) if it fails."""
    data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    stack = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # UnicodeEncodeError, a ValueError
        elif isinstance(item, dict | list):
            if depth == MAX_DEPTH:
                raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack += ((child, depth + 1) for child in children)
    return data


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def validate(adapter: TypeAdapter[T], data: Any) -> T:
    """``data`` (parsed JSON, maybe with dataclasses in it) validated in strict mode;
    :class:`ValidationError` if it is not a ``T``."""
    # JSON mode is strict about types but still reads arrays as tuples and strings as enums.
    return adapter.validate_json(to_json(data, inf_nan_mode="constants"), strict=True)


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """``where: what`` for the first error of ``exc``, one line."""
    first = exc.errors(include_url=False)[0]
    where = ".".join([prefix] * bool(prefix) + [str(part) for part in first["loc"]])
    return f"{where}: {first['msg']}" if where else first["msg"]


def bad_integer(value: Any) -> str | None:
    """``where: what`` for the first integer in ``value`` (a tree of dataclasses, dicts,
    lists and tuples) that is negative or too large, or ``None``."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if item < 0:
                return f"{where}: {item} is negative"
            if item >= INT_LIMIT:
                return f"{where}: a {len(str(item))}-digit number is too large"
            continue
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            children: Any = [(f.name, getattr(item, f.name)) for f in dataclasses.fields(item)]
        elif isinstance(item, dict):
            children = list(item.items())
        elif isinstance(item, list | tuple):
            children = list(enumerate(item))
        else:
            continue
        # Pushed in reverse, so the first bad integer in reading order is found first.
        stack.extend((f"{where}.{key}" if where else str(key), v) for key, v in reversed(children))
    return None
