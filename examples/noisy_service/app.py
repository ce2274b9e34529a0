"""The noisy service: a JSON API whose heap moves by tens of KiB from request to request.

memgate's demo is easy to judge: nothing it allocates outlives its request. Real services
are not like that, and their false flags came from what this one does on purpose:

- ``GET /report?size=N`` builds a response of about N bytes (the locustfile draws N from
  a long-tailed distribution, 200 B to 256 KiB);
- ``GET /lookup/{key}`` renders a document of 1 to 32 KiB (its size depends on the key)
  through an ``lru_cache`` of 256 entries over 4,096 keys: every miss swaps one document
  for another of a different size, so the cache's total churns by tens of KiB;
- ``POST /graph`` builds a tree of 50 to 800 nodes whose children point back to their
  parent, and drops it: reference cycles, freed only when the collector gets to them
  (large trees are promoted to older generations while they are built, so garbage piles
  up until a full collection);
- ``POST /batch`` hands 1 to 8 jobs to a worker pool that starts a thread for each job
  no idle thread can take and lets a thread go after 0.2 s without work; each thread
  holds a scratch buffer of 16 to 64 KiB for its life, so the pool grows and shrinks
  with the load's bursts.

Nothing outlives its usefulness: at a steady load the heap wanders but does not grow.
``NOISY_LEAK_BYTES=N`` plants a true leak of N bytes per request on average (the line
marked ``# planted leak``, sized as the demo's is). Served by uvicorn
(``python -m uvicorn examples.noisy_service.app:app``).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import random
import sys
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

LEAK_BYTES = int(os.environ.get("NOISY_LEAK_BYTES", "0") or 0)
KEYS = 4096
CACHE_SIZE = 256
MAX_REPORT = 256 * 1024

_OBJECT_OVERHEAD = sys.getsizeof(b"") + 8
_LEAK_EVERY = max(math.ceil((_OBJECT_OVERHEAD + 1) / LEAK_BYTES), 1) if LEAK_BYTES else 1
_LEAK_PAYLOAD = LEAK_BYTES * _LEAK_EVERY - _OBJECT_OVERHEAD
_retained: list[bytes] = []
_requests = itertools.count()


class RetainPerRequest:
    """ASGI middleware that keeps ``NOISY_LEAK_BYTES`` of every request forever."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if LEAK_BYTES and scope["type"] == "http" and next(_requests) % _LEAK_EVERY == 0:
            _retained.append(bytes(_LEAK_PAYLOAD))  # planted leak
        await self.app(scope, receive, send)


@functools.lru_cache(maxsize=CACHE_SIZE)
def render_document(key: int) -> bytes:
    """A document of 1 to 32 KiB, its size and content fixed by the key."""
    draw = random.Random(key)
    return draw.randbytes(1024 + draw.randrange(31 * 1024))


class Node:
    __slots__ = ("children", "parent", "payload")

    def __init__(self, parent: Node | None, payload: bytes) -> None:
        self.parent = parent
        self.children: list[Node] = []
        self.payload = payload


def build_tree(nodes: int, seed: int) -> int:
    """A tree whose nodes point back to their parents (cycles); returns its payload bytes."""
    draw = random.Random(seed)
    root = Node(None, bytes(draw.randrange(64, 512)))
    every = [root]
    for _ in range(nodes - 1):
        parent = every[draw.randrange(len(every))]
        child = Node(parent, bytes(draw.randrange(64, 512)))
        parent.children.append(child)
        every.append(child)
    return sum(len(node.payload) for node in every)


class ElasticPool:
    """Threads started on demand and let go after ``idle_s`` without work."""

    def __init__(self, idle_s: float = 0.2, max_threads: int = 16) -> None:
        self.idle_s = idle_s
        self.max_threads = max_threads
        self._jobs: deque[tuple[Future[int], int]] = deque()
        self._ready = threading.Condition()
        self._idle = 0
        self._threads = 0

    def submit(self, size: int) -> Future[int]:
        done: Future[int] = Future()
        with self._ready:
            self._jobs.append((done, size))
            if self._idle == 0 and self._threads < self.max_threads:
                self._threads += 1
                threading.Thread(target=self._work, daemon=True).start()
            self._ready.notify()
        return done

    def _work(self) -> None:
        scratch = bytearray(random.randrange(16, 64) * 1024)
        while True:
            with self._ready:
                self._idle += 1
                if not self._jobs:
                    self._ready.wait(self.idle_s)
                self._idle -= 1
                if not self._jobs:
                    self._threads -= 1
                    return
                done, size = self._jobs.popleft()
            scratch[:size] = os.urandom(min(size, len(scratch)))
            done.set_result(sum(scratch[:size:64]))

    @property
    def threads(self) -> int:
        return self._threads


_pool = ElasticPool()


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def report(request: Request) -> Response:
    try:
        size = min(max(int(request.query_params.get("size", "1024")), 0), MAX_REPORT)
    except ValueError:
        return JSONResponse({"error": "size must be an integer"}, 400)
    rows = [f"{i * 7919 % 100_003:06d}" for i in range(size // 256 + 1)]
    return JSONResponse({"size": size, "rows": rows, "padding": "x" * size})


async def lookup(request: Request) -> Response:
    key = int(request.path_params["key"]) % KEYS
    document = render_document(key)
    return JSONResponse({"key": key, "bytes": len(document), "head": document[:32].hex()})


async def graph(request: Request) -> Response:
    body = await request.json()
    nodes = min(max(int(body.get("nodes", 100)), 1), 5000)
    payload = build_tree(nodes, int(body.get("seed", 0)))
    return JSONResponse({"nodes": nodes, "payload_bytes": payload})


async def batch(request: Request) -> Response:
    body = await request.json()
    sizes = [min(max(int(size), 0), 64 * 1024) for size in body.get("jobs", [])][:8]
    futures = [_pool.submit(size) for size in sizes]
    results = await run_in_threadpool(lambda: [future.result(5) for future in futures])
    return JSONResponse({"jobs": len(results), "checksum": sum(results)})


async def stats(request: Request) -> JSONResponse:
    info: Any = render_document.cache_info()
    return JSONResponse(
        {
            "retained_objects": len(_retained),
            "cached_documents": info.currsize,
            "pool_threads": _pool.threads,
        }
    )


app = RetainPerRequest(
    Starlette(
        routes=[
            Route("/health", health),
            Route("/report", report),
            Route("/lookup/{key:int}", lookup),
            Route("/graph", graph, methods=["POST"]),
            Route("/batch", batch, methods=["POST"]),
            Route("/stats", stats),
        ]
    )
)
