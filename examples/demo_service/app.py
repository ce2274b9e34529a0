"""The demo service: a small JSON API whose memory behaviour is switched by environment.

It is what memgate's README, scenarios, tests and benchmarks run against. Served by
uvicorn (``python -m uvicorn examples.demo_service.app:app``).

Environment:

``DEMO_LEAK_BYTES=N``
    every request retains N bytes forever on average (a true leak), on the line marked
    ``# planted leak``: a bytes object sized so that it and its slot in a list come to
    N bytes. The smallest such pair takes 42 bytes, so below that one request in every
    ``ceil(42 / N)`` keeps ``N x that`` bytes.
``DEMO_CACHE=unbounded|lru``
    ``GET /items/{id}`` caches each rendered item by id: ``unbounded`` never evicts
    (grows with every new id), ``lru`` keeps the ``DEMO_CACHE_SIZE`` most recent
    (default 2000), so it grows and then levels off.
unset
    nothing outlives its request.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

LEAK_BYTES = int(os.environ.get("DEMO_LEAK_BYTES", "0") or 0)
CACHE_MODE = os.environ.get("DEMO_CACHE", "")
CACHE_SIZE = int(os.environ.get("DEMO_CACHE_SIZE", "2000") or 2000)

if CACHE_MODE not in ("", "unbounded", "lru"):
    sys.exit(f"DEMO_CACHE must be 'unbounded' or 'lru', not {CACHE_MODE!r}")

# A bytes object of n bytes takes sys.getsizeof(b"") + n; the list slot holding it 8 more.
_OBJECT_OVERHEAD = sys.getsizeof(b"") + 8
_LEAK_EVERY = max(math.ceil((_OBJECT_OVERHEAD + 1) / LEAK_BYTES), 1) if LEAK_BYTES else 1
_LEAK_PAYLOAD = LEAK_BYTES * _LEAK_EVERY - _OBJECT_OVERHEAD
_retained: list[bytes] = []
_requests = itertools.count()


class RetainPerRequest:
    """ASGI middleware that keeps ``DEMO_LEAK_BYTES`` of every request forever."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if LEAK_BYTES and scope["type"] == "http" and next(_requests) % _LEAK_EVERY == 0:
            _retained.append(bytes(_LEAK_PAYLOAD))  # planted leak
        await self.app(scope, receive, send)


class ItemCache:
    """A per-key cache of rendered items: unbounded, or least-recently-used."""

    def __init__(self, maxsize: int | None) -> None:
        self.maxsize = maxsize
        self._entries: collections.OrderedDict[int, dict[str, Any]] = collections.OrderedDict()

    def get_or_render(self, item_id: int) -> dict[str, Any]:
        entry = self._entries.get(item_id)
        if entry is not None:
            self._entries.move_to_end(item_id)
            return entry
        entry = render_item(item_id)
        self._entries[item_id] = entry
        if self.maxsize is not None and len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return entry


def render_item(item_id: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": f"item-{item_id:08d}",
        "tags": [f"tag-{item_id % 7}", f"group-{item_id % 13}"],
        "price_cents": (item_id * 7919) % 100_000,
    }


_cache = {"": None, "unbounded": ItemCache(None), "lru": ItemCache(CACHE_SIZE)}[CACHE_MODE]


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def get_item(request: Request) -> JSONResponse:
    item_id = int(request.path_params["item_id"])
    item = _cache.get_or_render(item_id) if _cache else render_item(item_id)
    return JSONResponse(item)


async def create_order(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        lines = [(int(line["item_id"]), int(line["quantity"])) for line in body["lines"]]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "expected {'lines': [{'item_id', 'quantity'}]}"}, 400)
    total = sum(render_item(item_id)["price_cents"] * qty for item_id, qty in lines)
    return JSONResponse({"lines": len(lines), "total_cents": total}, 201)


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "retained_objects": len(_retained),
            "cached_items": len(_cache._entries) if _cache else 0,
        }
    )


app = RetainPerRequest(
    Starlette(
        routes=[
            Route("/health", health),
            Route("/items/{item_id:int}", get_item),
            Route("/orders", create_order, methods=["POST"]),
            Route("/stats", stats),
        ]
    )
)
