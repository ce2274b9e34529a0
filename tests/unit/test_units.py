"""gate/units.py: how memgate writes quantities for people."""

from __future__ import annotations

from gate.units import size


def test_size_units() -> None:
    assert [size(0), size(0.25), size(1023), size(1536), size(-3 * 2**20), size(5 * 2**30)] == [
        "0 B",
        "0.2 B",
        "1023 B",
        "1.5 KiB",
        "-3.0 MiB",
        "5.0 GiB",
    ]
