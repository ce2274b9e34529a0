"""The cyclic service: a framework-sized long-lived heap, and reference cycles per request
that wait for a rare full collection.

CPython collects its oldest generation only when the objects promoted since the last
full collection pass a quarter of all long-lived ones. A service that imports a large
framework holds hundreds of thousands of them, so cyclic garbage that lived long enough
to be promoted waits seconds, or a whole run, for a full collection: the heap ramps like
a leak, then drops. This service does that on purpose:

- at import it builds a registry of 2,000 "models" with 40 "fields" each and 3,000
  "routes" (instances, dicts, lists and tuples, as a framework's metadata): about 200,000
  objects the collector tracks, for the life of the process;
- every request opens a ``Session`` and a ``Context`` that point at each other (a
  reference cycle) with a payload of a few hundred bytes, and keeps the pair in a
  ``deque(maxlen=2000)`` of recent sessions: long enough to survive two young
  collections and be promoted, then evicted, garbage in the oldest generation.

Nothing outlives its usefulness. ``CYCLIC_LEAK_BYTES=N`` plants a true leak of N bytes
per request on average (the line marked ``# planted leak``, sized as the demo's is).
Served by uvicorn (``python -m uvicorn examples.cyclic_service.app:app``).
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

LEAK_BYTES = int(os.environ.get("CYCLIC_LEAK_BYTES", "0") or 0)
MODELS = 2000
FIELDS = 40
ROUTES = 3000
RECENT = 2000

_OBJECT_OVERHEAD = sys.getsizeof(b"") + 8
_LEAK_EVERY = max(math.ceil((_OBJECT_OVERHEAD + 1) / LEAK_BYTES), 1) if LEAK_BYTES else 1
_LEAK_PAYLOAD = LEAK_BYTES * _LEAK_EVERY - _OBJECT_OVERHEAD
_retained: list[bytes] = []
_requests = itertools.count()


class Field:
    __slots__ = ("choices", "model", "name", "options")

    def __init__(self, model: Model, name: str, n: int) -> None:
        self.model = model  # a cycle too, but a long-lived one
        self.name = name
        self.options = {"null": n % 2 == 0, "index": n % 3 == 0, "default": n}
        self.choices = [(i, f"{name}-{i}") for i in range(n % 3)]


class Model:
    def __init__(self, n: int) -> None:
        self.name = f"model_{n}"
        self.fields = [Field(self, f"field_{i}", i) for i in range(FIELDS)]
        self.meta = {"table": f"app_{self.name}", "ordering": ("id",), "n": n}


REGISTRY = [Model(n) for n in range(MODELS)]
ROUTE_TABLE = {
    f"/api/v1/{n}": {"name": f"route_{n}", "methods": ("GET", "POST"), "params": [n, str(n)]}
    for n in range(ROUTES)
}


class Session:
    def __init__(self, n: int) -> None:
        self.n = n
        self.data = {"user": f"user-{n % 97}", "items": [n, n + 1, n + 2], "blob": "x" * 200}
        self.context = Context(self)


class Context:
    def __init__(self, session: Session) -> None:
        self.session = session  # the cycle: freed only by the collector
        self.headers = {"x-request": str(session.n), "accept": "application/json"}


_recent: collections.deque[Session] = collections.deque(maxlen=RECENT)


def _open(n: int) -> Session:
    if LEAK_BYTES and n % _LEAK_EVERY == 0:
        _retained.append(bytes(_LEAK_PAYLOAD))  # planted leak
    session = Session(n)
    _recent.append(session)  # evicted 2,000 requests later, promoted by then
    return session


async def model(request: Request) -> JSONResponse:
    n = next(_requests)
    _open(n)
    found = REGISTRY[int(request.path_params["n"]) % MODELS]
    fields: list[Any] = [f.name for f in found.fields[:5]]
    return JSONResponse({"model": found.name, "fields": fields, "request": n})


async def route(request: Request) -> JSONResponse:
    n = next(_requests)
    session = _open(n)
    found = ROUTE_TABLE.get(f"/api/v1/{int(request.path_params['n']) % ROUTES}", {})
    return JSONResponse({"route": found.get("name"), "user": session.data["user"]})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/models/{n:int}", model),
        Route("/routes/{n:int}", route),
    ]
)
