"""How memgate writes quantities for people, and reads the durations they write."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|m|min|h)?\s*$")
_PER_UNIT = {None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def seconds(text: str) -> float:
    """A duration as people write it, in seconds: ``90``, ``"30s"``, ``"1.5m"``,
    ``"2h"``, ``"500ms"``; :class:`ValueError` for anything else."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"not a duration: {text!r} (seconds, or a number with ms, s, m or h)")
    value = float(found[1]) * _PER_UNIT[found[2]]
    if not math.isfinite(value):
        raise ValueError(f"not a duration: {text!r}")
    return value


def size(num: float) -> str:
    """Bytes in binary units, signed when negative: ``1.5 MiB``, ``-512 B``."""
    sign = "-" if num < 0 else ""
    value = abs(float(num))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "B":
                return f"{sign}{value:.1f} B" if 0 < value < 10 else f"{sign}{value:.0f} B"
            return f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def quantity(value: float, unit: str) -> str:
    """A value in its unit: bytes in binary units, rates with one decimal below 1000."""
    if unit == "B":
        return size(value)
    number = f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{number} {unit}".strip()
