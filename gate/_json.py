"""Reading memgate's own JSON files (results, baseline histories) strictly, and the JSON
Schemas of those it writes.

These files are written by memgate but may be edited by hand or damaged, and what
they hold decides a build. So: UTF-8 only, no ``NaN`` or infinities, no ``true`` for
``1`` or ``"12"`` for ``12``, no lone surrogate, no junk nesting, and no negative
integer (every integer memgate stores is a count, a size in bytes, an index or a line
number).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BeforeValidator, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError, PydanticSerializationError, to_json

from gate._files import naming, read_input
from gate.errors import InputError
from gate.outcome import Outcome

T = TypeVar("T")

INT_LIMIT = 2**63
"""Integers at or past this are no size or count a run could measure."""


def read_json(
    path: Path,
    kind: str,
    *,
    not_json: str = "not valid JSON",
    fail: Callable[[str], InputError] | None = None,
) -> tuple[Any, bytes]:
    """A JSON file of memgate's (a result, a history, a report) read strictly (see
    :func:`loads`): its data, and its bytes for :func:`validate`. If it cannot be read,
    or is not JSON (``not_json: first line of why``), ``fail(reason)``: by default an
    :class:`InputError` whose one line names the file."""
    fail = fail or naming(path)
    raw = read_input(path, kind, fail)
    try:
        return loads(raw), raw
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, deep nesting
        raise fail(f"{not_json}: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def loads(raw: bytes) -> Any:
    """``json.loads`` of UTF-8 text, refusing ``NaN``, ``Infinity`` and numbers too large
    for a float; :class:`ValueError` (or :class:`RecursionError` for very deep nesting)
    if it fails."""
    return json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def validate(adapter: TypeAdapter[T], data: Any, raw: bytes | None = None) -> T:
    """``data`` validated in strict mode: from ``raw``, the JSON text it was read from,
    if given and it was not changed since; :class:`ValueError` (a
    :class:`ValidationError` when it is not a ``T``) if it fails."""
    # JSON mode is strict about types but still reads arrays as tuples and strings as
    # enums; pydantic's parser also refuses lone surrogates and junk nesting.
    if raw is None:
        try:
            raw = to_json(data, inf_nan_mode="constants")
        except PydanticSerializationError as exc:  # a lone surrogate, junk nesting
            raise ValueError(str(exc).strip().splitlines()[0]) from None
    return adapter.validate_json(raw, strict=True)


def first_error(exc: ValueError, prefix: str = "") -> str:
    """``where: what`` for the first error of ``exc`` (from :func:`validate`), one line."""
    if not isinstance(exc, ValidationError):
        return f"{prefix}: {exc}" if prefix else str(exc)
    first = exc.errors(include_url=False)[0]
    where = ".".join([prefix] * bool(prefix) + [str(part) for part in first["loc"]])
    return f"{where}: {first['msg']}" if where else first["msg"]


def bad_integer(value: Any) -> str | None:
    """``where: what`` for the first integer in ``value`` (a tree of dataclasses, dicts,
    lists and tuples) that is negative or too large, or ``None``."""
    if not _any_bad_integer(value):
        return None
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if type(item) is int:
            if item < 0:
                return f"{where}: {item} is negative"
            if item >= INT_LIMIT:
                return f"{where}: a {len(str(item))}-digit number is too large"
            continue
        if isinstance(item, dict):
            children = list(item.items())
        elif isinstance(item, list | tuple):
            children = list(enumerate(item))
        elif hasattr(type(item), "__dataclass_fields__"):
            children = [(f.name, getattr(item, f.name)) for f in dataclasses.fields(item)]
        else:
            continue
        # Pushed in reverse, so the first bad integer in reading order is found first.
        stack.extend((f"{where}.{key}" if where else str(key), v) for key, v in reversed(children))
    return None


def _any_bad_integer(value: Any) -> bool:
    """The quick pass of :func:`bad_integer`, which builds no paths."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is int:
            if not 0 <= item < INT_LIMIT:
                return True
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.values())
        elif hasattr(kind, "__dataclass_fields__"):  # its fields only (a frame's hash is not)
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return False


def one_of(*allowed: Outcome) -> BeforeValidator:
    """A reader's check that a stored outcome is one of ``allowed`` (a finding is never a
    pass, one check's verdict never an error), worded as pydantic words an enum's."""
    names = [f"'{o.value}'" for o in allowed]
    expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)

    def check(value: Any) -> Any:
        if value not in allowed:
            raise PydanticCustomError("enum", f"Input should be {expected}")
        return value

    return BeforeValidator(check)


def json_schema(adapter: TypeAdapter[Any], title: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of what ``adapter`` writes, titled ``title``: the
    schemas under ``docs/`` that other tools read memgate's files by."""
    schema = adapter.json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        **{k: v for k, v in schema.items() if k != "title"},
    }
