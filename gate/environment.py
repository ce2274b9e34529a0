"""Environment keys: what must match for two runs' figures to be compared, and the parts
a key is made of (``[gate] env_match`` names them). Pure: the verdict reads keys with it;
:mod:`gate.provenance` makes them."""

from __future__ import annotations

import re
from collections.abc import Iterable


def env_key(
    system: str,
    machine: str,
    python: str,
    memray: str,
    cpus: int | None,
    agent: bool = False,
    recording: str = "",
) -> str:
    """``Linux-x86_64-py3.11-memray1.20-2cpu``: what must match for runs to be compared.

    ``-agent`` ends the key of a service measured by memgate's agent in the service's
    own Python (memgate 0.2). Before, the service ran under ``memray run`` with memgate's
    folder first on its ``sys.path`` (memgate's ``_json`` shadowed the standard
    library's accelerator in it) and memray's command line imported modules before
    tracking began: its heap and garbage-collector figures do not compare.

    ``-counters`` ends the key of a run that traced nothing (``[profile] capture =
    "counters"``): its heap is the allocators' own count (pymalloc's blocks, malloc's
    chunks), not the sum of the sizes memray saw asked for (a 64-byte leak read 73.5
    B/request, against 65 traced). ``-sampled`` (``capture = "sampled"``): the heap
    counted so, and sites estimated from samples, not traced."""
    py_minor = ".".join(python.split(".")[:2])
    memray_minor = ".".join(memray.split(".")[:2])
    key = f"{system}-{machine}-py{py_minor}-memray{memray_minor}-{cpus or '?'}cpu"
    return key + "-agent" * agent + (f"-{recording}" if recording else "")


ENV_PARTS = ("system", "machine", "python", "memray", "cpus", "recording")
"""The parts of an environment key, in its order (``[gate] env_match`` names them)."""

_ENV_KEY = re.compile(
    r"(?P<system>[^-]+)-(?P<machine>[^-]+)-py(?P<python>\d+\.\d+)"
    r"-memray(?P<memray>\d+\.\d+)-(?P<cpus>\d+|\?)cpu(?P<recording>(?:-agent)?(?:-counters|-sampled)?)"
)


def env_parts(key: str) -> dict[str, str | None]:
    """The parts of an :func:`env_key`, each ``None`` where the key does not say it: the
    CPU count of ``?cpu`` (a result migrated from before memgate counted them), every part
    of a key in no format memgate wrote. ``recording`` is ``agent``, ``counters``,
    ``agent-counters``, ``agent-sampled`` or ``""`` (measured under ``memray run``, before
    memgate 0.2)."""
    found = _ENV_KEY.fullmatch(key)
    if found is None:
        return dict.fromkeys(ENV_PARTS)
    parts: dict[str, str | None] = found.groupdict()
    parts["recording"] = (parts["recording"] or "").removeprefix("-")
    if parts["cpus"] == "?":
        parts["cpus"] = None
    return parts


def env_differences(key: str, other: str, parts: Iterable[str] = ENV_PARTS) -> list[str]:
    """Those of ``parts`` in which two environment keys differ, in the key's order: a part
    either key does not say counts as differing. Equal keys never differ."""
    if key == other:
        return []
    mine, theirs = env_parts(key), env_parts(other)
    kept = set(parts)
    return [
        name
        for name in ENV_PARTS
        if name in kept and (mine[name] is None or mine[name] != theirs[name])
    ]
