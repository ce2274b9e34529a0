from __future__ import annotations

import dataclasses
import pickle

import numpy as np

from gate.analysis.sites import (
    library_frame,
    rank_sites,
    relative_frames,
    sum_by_stack,
    user_frame,
)
from gate.model import Frame

LIB = ["/usr/lib/python3.11", "/venv/lib/python3.11/site-packages"]
APP = Frame("handler", "/srv/app/api.py", 42)
STDLIB = Frame("dumps", "/usr/lib/python3.11/json/__init__.py", 231)
SITE = Frame("run_asgi", "/venv/lib/python3.11/site-packages/uvicorn/h11.py", 400)
FROZEN = Frame("_call_with_frames_removed", "<frozen importlib._bootstrap>", 241)
REQUESTS = [float(r) for r in np.linspace(0, 10_000, 100)]
A = (Frame("f", "app.py", 1),)
B = (Frame("g", "app.py", 2),)


def test_user_frame_skips_stdlib_site_packages_and_frozen() -> None:
    assert user_frame([STDLIB, FROZEN, SITE, APP], LIB) == APP
    assert user_frame([STDLIB, SITE], LIB) is None
    # A folder that merely starts like a library root is still user code.
    near = Frame("f", "/usr/lib/python3.11-tools/x.py", 1)
    assert user_frame([near], LIB) == near


ENTRY = Frame("<module>", "/srv/app/main.py", 30)  # uvicorn.run(app)


def test_the_line_that_starts_the_server_is_not_where_a_leak_is() -> None:
    # Only the entry point of the service's own code: the library frame names it.
    assert user_frame([STDLIB, SITE, ENTRY], LIB) is None
    assert library_frame([STDLIB, SITE, ENTRY], LIB) == SITE
    # The service's own code below the entry point is preferred to both.
    assert user_frame([STDLIB, APP, SITE, ENTRY], LIB) == APP
    # A module-level line that allocates itself, or through the standard library only,
    # is the place.
    assert user_frame([ENTRY], LIB) == ENTRY
    assert user_frame([STDLIB, ENTRY], LIB) == ENTRY
    # A function's line is no entry point, whatever it calls.
    looped = Frame("serve_forever", "/srv/app/main.py", 12)
    assert user_frame([SITE, looped], LIB) == looped
    assert library_frame([STDLIB], LIB) is None


def test_a_main_function_that_starts_the_server_is_the_entry_point_too() -> None:
    main = Frame("main", "/srv/app/main.py", 21)  # app.run(), called by the module's line
    assert user_frame([STDLIB, SITE, main, ENTRY], LIB) is None
    assert library_frame([STDLIB, SITE, main, ENTRY], LIB) == SITE
    # The handler the server calls back is the place, below main() and the library.
    assert user_frame([STDLIB, APP, SITE, main, ENTRY], LIB) == APP
    # main() allocating itself, or through the standard library, is the place.
    assert user_frame([main, ENTRY], LIB) == main
    assert user_frame([STDLIB, main, ENTRY], LIB) == main
    # A function called from the module through a library is not part of the entry.
    assert user_frame([SITE, main, SITE, ENTRY], LIB) == main
    # asyncio.run(server.serve()): the standard library's frames between the module's
    # line and the server's do not make the line the place.
    loop = Frame("run_until_complete", "/usr/lib/python3.11/asyncio/base_events.py", 653)
    assert user_frame([SITE, loop, STDLIB, ENTRY], LIB) is None
    assert user_frame([SITE, loop, main, ENTRY], LIB) is None


def test_relative_frames_only_below_base() -> None:
    assert relative_frames([APP, STDLIB], "/srv/app") == (
        Frame("handler", "api.py", 42),
        STDLIB,
    )


def series(f) -> list[int]:
    rng = np.random.default_rng(len(REQUESTS))
    return [max(int(f(r) + rng.normal(0, 200)), 0) for r in REQUESTS]


def test_a_steady_leak_outranks_a_bigger_cache_filled_once() -> None:
    # The cache gains 2 MB, more than the leak's 0.5 MB, but all before request 1000.
    cache = ([Frame("fill", "/srv/app/cache.py", 9), APP], series(lambda r: 2e6 * min(r / 1000, 1)))
    leak = ([STDLIB, Frame("leak", "/srv/app/leak.py", 3)], series(lambda r: 50.0 * r))
    freed = ([SITE], series(lambda r: 3e5 if r < 5000 else 0))
    sites = rank_sites(
        iter([cache, leak, freed]),
        requests=REQUESTS,
        steady_index=5,
        library_roots=LIB,
        base="/srv/app",
    )
    assert [s.user_frame for s in sites] == [
        Frame("leak", "leak.py", 3),
        Frame("fill", "cache.py", 9),
        None,
    ]
    leak_site, cache_site, _ = sites
    assert leak_site.trend.low <= 50 <= leak_site.trend.high
    assert leak_site.confidence > 0.95
    assert cache_site.confidence < 0.5
    assert leak_site.stack[0] == STDLIB
    assert leak_site.series[-1] == leak_site.live_bytes_end
    assert leak_site.live_bytes_steady == leak_site.series[5]


def test_rank_sites_keeps_only_the_limit() -> None:
    stacks = [
        ([Frame("f", f"/srv/app/m{i}.py", i)], series(lambda r, i=i: i * r)) for i in range(1, 30)
    ]
    sites = rank_sites(
        iter(stacks),
        requests=REQUESTS,
        steady_index=0,
        library_roots=LIB,
        base="/srv/app",
        limit=3,
    )
    assert [s.stack[0].file for s in sites] == ["m29.py", "m28.py", "m27.py"]


def test_a_cache_filling_through_the_steady_state_ranks_below_a_leak() -> None:
    # 3 MB filled evenly over the first half: a big slope, but a wide interval.
    cache = ([Frame("fill", "/srv/app/cache.py", 9)], series(lambda r: 3e6 * min(r / 5000, 1)))
    leak = ([Frame("leak", "/srv/app/leak.py", 3)], series(lambda r: 64.0 * r))
    sites = rank_sites(
        iter([cache, leak]),
        requests=REQUESTS,
        steady_index=0,
        library_roots=LIB,
        base="/srv/app",
    )
    assert sites[0].user_frame == Frame("leak", "leak.py", 3)
    assert sites[1].trend.slope > sites[0].trend.slope


def test_the_same_stack_in_several_processes_is_one_site() -> None:
    merged = dict(sum_by_stack([[(A, [1, 2]), (B, [5, 5])], [(A, [10, 20])], []]))
    assert merged == {A: [11, 22], B: [5, 5]}


def test_one_process_is_passed_through() -> None:
    stream = [(A, (1, 2))]
    assert list(sum_by_stack([stream])) == stream


def test_sites_under_the_entry_point_are_named_by_their_library_frame() -> None:
    other = Frame("receive", "/venv/lib/python3.11/site-packages/uvicorn/h11.py", 210)
    stacks = [
        ([STDLIB, SITE, ENTRY], series(lambda r: 64.0 * r)),
        ([other, ENTRY], series(lambda r: 32.0 * r)),
    ]
    sites = rank_sites(
        iter(stacks), requests=REQUESTS, steady_index=0, library_roots=LIB, base="/srv/app"
    )
    assert [(s.frame, s.in_user_code) for s in sites] == [(SITE, False), (other, False)]
    assert all(s.user_frame is None for s in sites)


def test_equal_stacks_of_distinct_frames_sum_as_one_across_processes() -> None:
    """Stacks are summed by their frames' ids first (the sampled reader's frames are
    interned) and by value besides: equal stacks made of other objects are one site."""
    one = (Frame("handle", "app.py", 5), Frame("main", "app.py", 9))
    other = tuple(Frame(f.function, f.file, f.line) for f in one)
    assert one == other and one[0] is not other[0]
    summed = dict(sum_by_stack([[(one, [1, 2])], [(other, [10, 20]), (one, [100, 200])]]))
    assert summed == {one: [111, 222]}


def test_a_frame_hashes_as_its_place_and_again_where_unpickled() -> None:
    """A frame's hash is kept on it, but never carried along: another process's strings
    hash otherwise (a pickled hash would be wrong there)."""
    frame = Frame("handle", "app.py", 5)
    assert hash(frame) == hash(("handle", "app.py", 5))
    assert b"_hash" not in pickle.dumps(frame)
    again = pickle.loads(pickle.dumps(frame))
    assert again == frame and hash(again) == hash(frame)
    assert dataclasses.asdict(frame) == {"function": "handle", "file": "app.py", "line": 5}
