from __future__ import annotations

from gate.analysis.sites import rank_sites, relative_frames, user_frame
from gate.model import Frame

LIB = ["/usr/lib/python3.11", "/venv/lib/python3.11/site-packages"]
APP = Frame("handler", "/srv/app/api.py", 42)
STDLIB = Frame("dumps", "/usr/lib/python3.11/json/__init__.py", 231)
SITE = Frame("run_asgi", "/venv/lib/python3.11/site-packages/uvicorn/h11.py", 400)
FROZEN = Frame("_call_with_frames_removed", "<frozen importlib._bootstrap>", 241)


def test_user_frame_skips_stdlib_site_packages_and_frozen() -> None:
    assert user_frame([STDLIB, FROZEN, SITE, APP], LIB) == APP
    assert user_frame([STDLIB, SITE], LIB) is None
    # A folder that merely starts like a library root is still user code.
    near = Frame("f", "/usr/lib/python3.11-tools/x.py", 1)
    assert user_frame([near], LIB) == near


def test_relative_frames_only_below_base() -> None:
    assert relative_frames([APP, STDLIB], "/srv/app") == (
        Frame("handler", "api.py", 42),
        STDLIB,
    )


def test_rank_sites_orders_by_growth_after_warmup() -> None:
    cache = ([Frame("fill", "/srv/app/cache.py", 9), APP], [0, 5000, 5000, 5000])
    leak = ([STDLIB, Frame("leak", "/srv/app/leak.py", 3)], [0, 100, 600, 1100])
    freed = ([SITE], [0, 300, 0, 0])
    gone = ([FROZEN], [0, 0, 0, 0])
    sites = rank_sites(
        iter([cache, leak, freed, gone]),
        warmup_index=1,
        measured_requests=100,
        library_roots=LIB,
        base="/srv/app",
    )
    assert [s.user_frame for s in sites] == [
        Frame("leak", "leak.py", 3),
        Frame("fill", "cache.py", 9),
        None,
    ]
    leak_site = sites[0]
    assert leak_site.growth_per_request == 10.0
    assert (leak_site.live_bytes_warmup, leak_site.live_bytes_end) == (100, 1100)
    assert leak_site.series == (0, 100, 600, 1100)
    assert leak_site.stack[0] == STDLIB
    assert sites[2].growth_per_request == -3.0


def test_rank_sites_keeps_only_the_limit() -> None:
    stacks = [([Frame("f", f"/srv/app/m{i}.py", i)], [0, 0, i]) for i in range(1, 100)]
    sites = rank_sites(
        iter(stacks),
        warmup_index=1,
        measured_requests=1,
        library_roots=LIB,
        base="/srv/app",
        limit=3,
    )
    assert [s.live_bytes_end for s in sites] == [99, 98, 97]
