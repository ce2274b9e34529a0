"""What keeps the memory alive, told beside the findings it explains: the census's
keepers (the containers that grew), the lines of the service that add to them, and the
site findings grouped by the keeper whose growth explains them, so that a leak through
a web framework reads as one cache and its sites, not as 34 findings."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gate.analysis.retention import in_module
from gate.model import Frame, RunResult, shown_file
from gate.observed import Retained, Retention
from gate.verdict import Finding

GROWTH_CHECKS = frozenset({"leak", "site", "processes"})
"""The checks whose findings are memory that grew: what keeps it alive goes with them."""
MOST_SITES = 5
"""Site findings listed under one keeper; the rest are counted."""
MOST_ADDS = 3
"""Lines that add to a container named in a line of text; the rest are counted."""


def retained_text(retained: Retained, several: bool = False) -> str:
    """``examples.app._retained (list, +4,949 items, 0.99 per request), added to at
    examples/app.py:59 in __call__``: what grew in the census, by how much, and where
    the service adds to it when that was found (``several``: name the process)."""
    grew = f"+{retained.after - retained.before:,}"
    per = f"{retained.per_request:,.2f} per request"
    who = f" in process {retained.pid}" if several else ""
    if retained.kind == "container":
        text = f"{retained.what} ({retained.type}, {grew} items, {per}){who}"
        if retained.adds:
            text += f", {adds_text(retained)}"
    elif retained.kind == "native":
        text = (
            f"{retained.what}: {grew} objects that no object refers to, {per}{who}:"
            " references native code took and kept"
        )
    else:
        text = f"{retained.what}: {grew} objects, {per}{who}"
    return text


def adds_text(retained: Retained) -> str:
    """``added to at examples/app.py:59 in __call__`` (and the next lines, counted past
    :data:`MOST_ADDS`); empty when no line that adds to it was found."""
    lines = [f"{shown_file(a.file)}:{a.line} in {a.function}" for a in retained.adds]
    if not lines:
        return ""
    more = len(lines) - MOST_ADDS
    text = ", ".join(lines[:MOST_ADDS]) + (f" and {more} more lines" if more > 0 else "")
    return f"added to at {text}"


def keeper(result: RunResult) -> str:
    """``kept alive by examples.app._retained (list, +4,949 items, 0.99 per request)``:
    what grew most in the census, a container before a type; empty when nothing grew
    (or no census was taken)."""
    retention = result.retention
    if retention is None or not retention.retained:
        return ""
    several = len({r.pid for r in retention.retained}) > 1
    return f"kept alive by {retained_text(retention.retained[0], several)}"


def keepers(retention: Retention | None) -> tuple[Retained, ...]:
    """What site findings are grouped under: the containers the census found growing,
    else the one thing it named first (a type, or what only native code holds); none
    without a census or when nothing grew."""
    if retention is None or not retention.retained:
        return ()
    containers = tuple(r for r in retention.retained if r.kind == "container")
    return containers or retention.retained[:1]


@dataclasses.dataclass(frozen=True)
class Kept:
    """Site findings under what keeps their memory alive."""

    keeper: Retained | None
    """``None``: kept by nothing the census named."""
    findings: tuple[Finding, ...]
    """The site findings, in the verdict's order."""


def by_keeper(
    result: RunResult, findings: Sequence[Finding]
) -> tuple[tuple[Finding, ...], tuple[Kept, ...]]:
    """``findings`` as the reports show them: those shown on their own, and the site
    findings grouped by the keeper that explains them (:func:`keepers`' order, then
    those kept by nothing the census named). With one keeper, it explains every
    growing site; with several, a site goes to the one its stack adds to (a frame on
    a line that adds to it), else to the one in the module of its innermost frame that
    is a keeper's (the module the keeper's path starts from, or the file of its lines).
    Without a keeper, nothing is grouped. Presentation only: the verdict is unchanged."""
    kept = keepers(result.retention)
    if not kept:
        return tuple(findings), ()
    own: list[Finding] = []
    groups: dict[int | None, list[Finding]] = {}
    for finding in findings:
        if finding.check != "site":
            own.append(finding)
            continue
        at = 0 if len(kept) == 1 else _keeper_of(result, finding.where, kept)
        groups.setdefault(at, []).append(finding)
    order = sorted(groups, key=lambda at: len(kept) if at is None else at)
    grouped = tuple(Kept(None if at is None else kept[at], tuple(groups[at])) for at in order)
    return tuple(own), grouped


def _keeper_of(result: RunResult, where: Frame | None, kept: Sequence[Retained]) -> int | None:
    """Which of ``kept`` explains the site named by ``where`` (:func:`by_keeper`)."""
    site = next((s for s in result.sites if where is not None and s.frame == where), None)
    frames = site.stack if site is not None else (where,) if where is not None else ()
    for frame in frames:
        for at, retained in enumerate(kept):
            if any((a.file, a.line) == (frame.file, frame.line) for a in retained.adds):
                return at
    for frame in frames:
        for at, retained in enumerate(kept):
            files = {a.file for a in retained.adds}
            if frame.file in files or in_module(retained.what, frame.file):
                return at
    return None


def keeper_heading(group: Kept, several: bool = False) -> str:
    """``Kept alive by examples.app._retained (list, +4,949 items, 0.99 per request)``,
    or ``Kept alive by nothing the census named``."""
    if group.keeper is None:
        return "Kept alive by nothing the census named"
    return f"Kept alive by {retained_text(group.keeper, several)}"


def keeps_alive(retained: Retained, allocated: Frame | None) -> str:
    """What an annotation on a line that adds to a container says: ``keeps the leak
    alive: examples.app._retained grows 1.00 per request (the allocation is at
    examples/app.py:54)``."""
    text = f"keeps the leak alive: {retained.what} grows {retained.per_request:,.2f} per request"
    if allocated is not None:
        text += f" (the allocation is at {shown_file(allocated.file)}:{allocated.line})"
    return text
