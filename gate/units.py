"""How memgate writes quantities for people."""

from __future__ import annotations


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
