"""Allocation sites: which stacks kept memory alive through the measured phase."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

from gate.model import Frame, Site

MAX_SITES = 50


def user_frame(stack: Sequence[Frame], library_roots: Sequence[str]) -> Frame | None:
    """The innermost frame in the user's own code: a real file outside ``library_roots``
    (the standard library and site-packages), or ``None``."""
    for frame in stack:
        if frame.file.startswith("<") or not frame.file:
            continue
        if any(_is_below(frame.file, root) for root in library_roots):
            continue
        return frame
    return None


def _is_below(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def relative_frames(stack: Sequence[Frame], base: str) -> tuple[Frame, ...]:
    """Frames with files below ``base`` made relative to it (stable across machines)."""
    base_path = PurePosixPath(base)
    out = []
    for frame in stack:
        path = PurePosixPath(frame.file)
        if path.is_absolute() and _is_below(frame.file, base):
            out.append(Frame(frame.function, str(path.relative_to(base_path)), frame.line))
        else:
            out.append(frame)
    return tuple(out)


def rank_sites(
    stacks: Iterable[tuple[Sequence[Frame], Sequence[int]]],
    *,
    warmup_index: int,
    measured_requests: int,
    library_roots: Sequence[str],
    base: str,
    limit: int = MAX_SITES,
) -> tuple[Site, ...]:
    """The ``limit`` stacks whose live bytes grew most between the warm-up point and the
    last point, largest growth first.

    ``stacks`` gives each stack with its live bytes at every curve point; it is consumed
    once and only ``limit`` sites are held at a time.
    """
    ranked = heapq.nlargest(
        limit,
        (
            (live[-1] - live[warmup_index], i, stack, live)
            for i, (stack, live) in enumerate(stacks)
            if live[-1] or live[warmup_index]
        ),
        key=lambda item: (item[0], -item[1]),
    )
    per_request = max(measured_requests, 1)
    sites = []
    for growth, _, stack, live in ranked:
        found = user_frame(stack, library_roots)
        sites.append(
            Site(
                stack=relative_frames(stack, base),
                user_frame=relative_frames([found], base)[0] if found else None,
                live_bytes_warmup=int(live[warmup_index]),
                live_bytes_end=int(live[-1]),
                growth_per_request=round(growth / per_request, 3),
                series=tuple(int(v) for v in live),
            )
        )
    return tuple(sites)
