"""The queue example's public order API: it checks each order and hands it to the worker.

Run from the repository's root, with the worker (``worker.py``) already listening::

    WORKER_URL=http://127.0.0.1:8001 python -m examples.queue_service.api --port 8000

- ``GET /health``: 200 ``{"status": "ok"}`` (whether or not the worker is up).
- ``POST /orders`` with ``{"lines": [{"item_id": int, "quantity": int}, ...]}``: 400 if it
  is not that, else the worker's ``POST /jobs``; 201 ``{"order": id}`` once it is queued.
- ``GET /orders/{id}``: the worker's ``GET /jobs/{id}``, status and body as it answered.

Each of the API's connection threads (one per client connection) keeps one connection to
the worker open, and reconnects once if the worker closed it in between; a worker that
cannot be reached, or answers nothing sensible, gives 502.

Environment:

``WORKER_URL``
    the worker's address, ``http://host:port``; required.
``API_LEAK_BYTES=N``
    every order placed retains N bytes forever on average (a true leak), on the line marked
    ``# planted leak``, sized as in ``worker.py``.
``PORT``
    the port to listen on when ``--port`` is not given.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import sys
import urllib.parse
from http import HTTPStatus

from examples.queue_service.jsonhttp import JsonHandler, leak_plan, parse_order, serve

WORKER_TIMEOUT = 10
"""Seconds to wait for the worker to connect or to answer."""

LEAK_EVERY, LEAK_SIZE = leak_plan("API_LEAK_BYTES")
_retained: list[bytes] = []
_orders = itertools.count(1)

_ORDER_PATH = re.compile(r"/orders/(\d{1,18})")


class ApiHandler(JsonHandler):
    """One per client connection, in that connection's own thread: so the connection to
    the worker it keeps is the thread's, and is closed when the client's is."""

    worker: tuple[str, int] = ("127.0.0.1", 0)
    """The worker's host and port; set by main() from ``WORKER_URL``."""
    _connection: http.client.HTTPConnection | None = None

    def do_GET(self) -> None:
        order = _ORDER_PATH.fullmatch(self.path)
        if self.path == "/health":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
        elif order is None:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        elif (answer := self.ask_worker("GET", f"/jobs/{order[1]}")) is not None:
            self.send_payload(*answer)

    def do_POST(self) -> None:
        payload = self.read_body()
        if payload is None:
            return
        if self.path != "/orders":
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            lines = parse_order(payload)
        except ValueError as error:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            return
        if LEAK_EVERY and next(_orders) % LEAK_EVERY == 0:
            _retained.append(bytes(LEAK_SIZE))  # planted leak
        job = json.dumps({"lines": [{"item_id": i, "quantity": q} for i, q in lines]})
        answer = self.ask_worker("POST", "/jobs", job.encode())
        if answer is None:
            return
        status, body = answer
        if status == HTTPStatus.SERVICE_UNAVAILABLE:  # the worker's queue is full
            self.send_payload(status, body)
            return
        try:
            job_id = json.loads(body)["job"] if status == HTTPStatus.ACCEPTED else None
        except (ValueError, KeyError, TypeError):
            job_id = None
        if type(job_id) is int:
            self.send_json(HTTPStatus.CREATED, {"order": job_id})
        else:
            self.send_json(HTTPStatus.BAD_GATEWAY, {"error": f"the worker answered {status}"})

    def ask_worker(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes] | None:
        """The worker's status and body; None once a 502 has been answered."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        while True:
            reused = self._connection is not None
            if self._connection is None:
                self._connection = http.client.HTTPConnection(*self.worker, timeout=WORKER_TIMEOUT)
            try:
                self._connection.request(method, path, body, headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as error:
                self._connection.close()
                self._connection = None
                # Tried again only when a kept-alive connection was reset or closed, as the
                # worker does when it idles: anything else may have reached the worker,
                # and a job must not be queued twice.
                if not (reused and isinstance(error, ConnectionError)):
                    break
        self.send_json(HTTPStatus.BAD_GATEWAY, {"error": "the worker cannot be reached"})
        return None

    def finish(self) -> None:
        """The client's connection ends: so does this thread's connection to the worker."""
        if self._connection is not None:
            self._connection.close()
        super().finish()


def worker_address(url: str) -> tuple[str, int]:
    """Host and port of ``http://host:port``; exits with a message for anything else."""
    if not url:
        sys.exit("api: set WORKER_URL to the worker's address, e.g. http://127.0.0.1:8001")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        sys.exit(f"api: WORKER_URL={url!r}: {error}")
    if parts.scheme != "http" or not parts.hostname or port is None:
        sys.exit(f"api: WORKER_URL={url!r} is not http://host:port")
    return parts.hostname, port


def main(argv: list[str] | None = None) -> int:
    ApiHandler.worker = worker_address(os.environ.get("WORKER_URL", ""))
    return serve("api", ApiHandler, argv)


if __name__ == "__main__":
    sys.exit(main())
