"""A prefork WSGI service for memgate: gunicorn workers, one of which can be made to leak.

Served by gunicorn with this folder's config (``gunicorn.conf.py`` numbers the workers)::

    python -m gunicorn examples.prefork_service.app:app -c examples/prefork_service/gunicorn.conf.py

It answers the demo service's routes (``/health``, ``GET /items/{id}``, ``POST /orders``),
so the demo's Locust file drives it too.

Environment:

``PREFORK_LEAK_BYTES=N``
    a request keeps N bytes forever, on the line marked ``# planted leak``;
``PREFORK_LEAK_WORKER=K``
    only worker number K (1 for the first gunicorn started, and so on) leaks; unset, every
    worker does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

LEAK_BYTES = int(os.environ.get("PREFORK_LEAK_BYTES", "0") or 0)
LEAK_WORKER = os.environ.get("PREFORK_LEAK_WORKER", "")
WORKER = os.environ.get("PREFORK_WORKER", "")
"""Set by ``gunicorn.conf.py`` in each worker before the app is imported there."""

LEAKS = LEAK_BYTES > 0 and LEAK_WORKER in ("", WORKER)
_retained: list[bytes] = []
_ITEM = re.compile(r"^/items/(\d+)$")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if LEAKS:
        remember(environ["PATH_INFO"])
    status, body = route(environ)
    payload = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def remember(path: str) -> None:
    _retained.append(bytes(LEAK_BYTES))  # planted leak


def route(environ: dict[str, Any]) -> tuple[str, Any]:
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    if path == "/health":
        return "200 OK", {"status": "ok", "worker": WORKER}
    item = _ITEM.match(path)
    if item and method == "GET":
        return "200 OK", render_item(int(item.group(1)))
    if path == "/orders" and method == "POST":
        return create_order(environ)
    return "404 Not Found", {"error": "not found"}


def render_item(item_id: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": f"item-{item_id:08d}",
        "tags": [f"tag-{item_id % 7}", f"group-{item_id % 13}"],
        "price_cents": (item_id * 7919) % 100_000,
    }


def create_order(environ: dict[str, Any]) -> tuple[str, Any]:
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(size))
        lines = [(int(line["item_id"]), int(line["quantity"])) for line in body["lines"]]
    except (ValueError, KeyError, TypeError):
        return "400 Bad Request", {"error": "expected {'lines': [{'item_id', 'quantity'}]}"}
    total = sum(render_item(item_id)["price_cents"] * qty for item_id, qty in lines)
    return "201 Created", {"lines": len(lines), "total_cents": total}
