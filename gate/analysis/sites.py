"""Allocation sites: which stacks keep memory alive as requests go by, and how surely."""

from __future__ import annotations

import dataclasses
import functools
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import TypeVar

import numpy as np

from gate.analysis.trend import blocks, trend
from gate.model import Frame, NativeFrame, Site

AnyFrame = TypeVar("AnyFrame", Frame, NativeFrame)

MAX_SITES = 50
CANDIDATES = 200
"""Stacks kept by raw growth before their trends are estimated (the rest grew less)."""


def user_frame(stack: Sequence[Frame], library_roots: Sequence[str]) -> Frame | None:
    """The innermost frame in the user's own code (a real file outside ``library_roots``,
    the standard library and site-packages) that is not only the entry point, or
    ``None``.

    The entry point is the code that starts the server: the module-level line
    (``uvicorn.run(app)`` under ``if __name__ == "__main__"``) and the functions of the
    service's own it calls on the way (``main()`` calling ``app.run()``): the outermost
    frames of the service's own code, from ``<module>`` inward while each calls the
    next, with an installed library's frames inside them. It is below every request, so
    a leak is never there: a stack whose only frames of the service's own code it is
    has none (:func:`library_frame` names it). A module-level line (or ``main()``) that
    allocates itself, or through the standard library only, is still the place."""
    own = [i for i, frame in enumerate(stack) if _is_own(frame, library_roots)]
    if own and stack[own[-1]].function == "<module>":
        entry = len(own) - 1  # the outermost own frames, one within the next
        while entry > 0 and own[entry - 1] == own[entry] - 1:
            entry -= 1
        if any(_is_installed(frame, library_roots) for frame in stack[: own[entry]]):
            del own[entry:]
    return stack[own[0]] if own else None


def library_frame(stack: Sequence[Frame], library_roots: Sequence[str]) -> Frame | None:
    """The innermost frame in an installed library (site-packages), or ``None``: where a
    site is named when the service's own code in it only starts the server."""
    return next((frame for frame in stack if _is_installed(frame, library_roots)), None)


def _is_own(frame: Frame, library_roots: Sequence[str]) -> bool:
    if frame.file.startswith("<") or not frame.file:
        return False
    return not any(_is_below(frame.file, root) for root in library_roots)


def _is_installed(frame: Frame, library_roots: Sequence[str]) -> bool:
    """Whether the frame is in site-packages (not the standard library)."""
    return _in_site_packages(frame.file) and any(
        _is_below(frame.file, root) for root in library_roots
    )


# By file: the 200 candidates' 50 frames are a few hundred files (a path parsed per
# frame took a tenth of the ranking's time on a Flask app).
@functools.lru_cache(maxsize=1 << 14)
def _in_site_packages(file: str) -> bool:
    parts = PurePosixPath(file).parts
    return "site-packages" in parts or "dist-packages" in parts


@functools.lru_cache(maxsize=1 << 14)
def _relative_file(file: str, base: str) -> str | None:
    """``file`` relative to ``base`` if it is below it, else ``None``."""
    path = PurePosixPath(file)
    if path.is_absolute() and _is_below(file, base):
        return str(path.relative_to(PurePosixPath(base)))
    return None


def _is_below(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def relative_frames(stack: Sequence[AnyFrame], base: str) -> tuple[AnyFrame, ...]:
    """Frames with files below ``base`` made relative to it (stable across machines)."""
    out = []
    for frame in stack:
        relative = _relative_file(frame.file, base)
        out.append(frame if relative is None else dataclasses.replace(frame, file=relative))
    return tuple(out)


def sum_by_stack(
    streams: Sequence[Iterable[tuple[tuple[Frame, ...], Sequence[int]]]],
) -> Iterator[tuple[tuple[Frame, ...], Sequence[int]]]:
    """The stacks of several processes' captures, each stack's live bytes summed over
    the processes (the same code in a prefork server's workers is one site)."""
    if len(streams) == 1:
        yield from streams[0]
        return
    # A stack is looked up by its frames' ids first: a reader that interns its frames
    # (the sampled one, over all its processes) gives the same stack as the same
    # objects, whose ids hash far faster than 50 frames do; equal stacks of other
    # objects still meet by value, once per such stack.
    totals: dict[tuple[Frame, ...], np.ndarray] = {}
    by_ids: dict[tuple[int, ...], tuple[tuple[Frame, ...], np.ndarray]] = {}
    for stream in streams:
        for stack, live in stream:
            values = np.asarray(live, dtype=np.int64)
            key = tuple(map(id, stack))
            seen = by_ids.get(key)
            if seen is None:
                summed = totals.get(stack)
                if summed is None:
                    summed = totals[stack] = values.copy()
                else:
                    summed += values
                by_ids[key] = (stack, summed)  # the stack kept: its frames' ids stay theirs
            else:
                summed = seen[1]
                summed += values  # in place: the array in ``totals``
    for stack, summed in totals.items():
        yield stack, summed.tolist()


def rank_sites(
    stacks: Iterable[tuple[Sequence[Frame], Sequence[int]]],
    *,
    requests: Sequence[float],
    steady_index: int,
    library_roots: Sequence[str],
    base: str,
    limit: int = MAX_SITES,
    native: Callable[[tuple[Frame, ...]], tuple[NativeFrame, ...]] = lambda stack: (),
    retained: tuple[Sequence[float], int] | None = None,
) -> tuple[Site, ...]:
    """The ``limit`` stacks most likely to be leaking, most likely first.

    With ``retained`` (the requests of the curve's retained points, and the first of them
    in the steady state), each stack's live bytes go on past the curve's points with its
    live bytes at those: growth is judged on them (bytes waiting for a full collection
    are not growth), the series kept is the curve's.

    ``stacks`` gives each stack with its live bytes at every curve point (``requests``
    gives the points' x); it is consumed once, keeping only the ``CANDIDATES`` that grew
    most over the steady state. Each candidate's growth per request is estimated like the
    heap's (:func:`gate.analysis.trend.trend`); sites are ranked by
    :func:`most_likely_first`, so that a cache filled once ranks low and a site that grows
    with every request ranks first. ``native`` gives a stack's native frames (asked for
    the sites kept only).
    """
    n = len(requests)
    first = n + retained[1] if retained is not None else steady_index
    candidates = heapq.nlargest(
        CANDIDATES,
        (
            (live[-1] - live[first], i, stack, live)
            for i, (stack, live) in enumerate(stacks)
            if live[-1] or live[first] or live[n - 1] or live[steady_index]
        ),
        key=lambda item: (item[0], -item[1]),
    )
    measured = []
    for _, _, stack, live in candidates:
        found = user_frame(stack, library_roots)
        library = None if found else library_frame(stack, library_roots)
        site = measure_site(
            relative_frames(stack, base),
            relative_frames([found], base)[0] if found else None,
            live[:n],
            requests=requests,
            steady_index=steady_index,
            library_frame=library,
            judged=(retained[0], live[n:], retained[1]) if retained is not None else None,
        )
        measured.append((site, tuple(stack)))
    measured.sort(key=lambda pair: _likelihood(pair[0]), reverse=True)
    return tuple(
        dataclasses.replace(site, native=relative_frames(frames, base))
        if (frames := native(stack))
        else site
        for site, stack in measured[:limit]
    )


def remeasure(
    sites: Iterable[tuple[tuple[Frame, ...], Frame | None, Sequence[int]]],
    *,
    requests: Sequence[float],
    steady_index: int,
) -> tuple[Site, ...]:
    """Sites already found (stack, user frame, live-bytes series) measured again over a
    steady state, most likely leaking first: for results written by an older memgate."""
    return most_likely_first(
        measure_site(stack, frame, live, requests=requests, steady_index=steady_index)
        for stack, frame, live in sites
    )


def measure_site(
    stack: tuple[Frame, ...],
    frame: Frame | None,
    live: Sequence[int],
    *,
    requests: Sequence[float],
    steady_index: int,
    library_frame: Frame | None = None,
    judged: tuple[Sequence[float], Sequence[int], int] | None = None,
) -> Site:
    """A site with its growth over the steady state and the confidence in it; with
    ``judged`` (requests, live bytes and the steady state's first index of the retained
    points), the growth of those."""
    if judged is not None:
        x, y, first = judged
        growth = trend(*blocks(x[first:], y[first:]))
    else:
        growth = trend(*blocks(requests[steady_index:], live[steady_index:]))
    return Site(
        stack=stack,
        user_frame=frame,
        live_bytes_steady=int(live[steady_index]),
        live_bytes_end=int(live[-1]),
        trend=growth,
        confidence=round(max(growth.tau, 0.0) * (1.0 - growth.p_value), 3),
        series=tuple(int(v) for v in live),
        basis="retained" if judged is not None else "heap",
        library_frame=library_frame,
    )


def most_likely_first(sites: Iterable[Site]) -> tuple[Site, ...]:
    """Sites ordered by the growth per request they surely have (the interval's lower
    bound, at least 0) times confidence, largest first: a cache that grew a lot for a
    while, with a wide interval, ranks below a site that grows with every request."""
    return tuple(sorted(sites, key=_likelihood, reverse=True))


def _likelihood(site: Site) -> tuple[float, float]:
    return (max(site.trend.low, 0.0) * site.confidence, site.trend.slope)
