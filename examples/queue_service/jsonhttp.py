"""JSON over HTTP/1.1 for the queue example's two servers, on the standard library only.

Both servers are a ``http.server.ThreadingHTTPServer`` on 127.0.0.1: one thread per client
connection, kept alive between requests (every answer has a Content-Length), nothing
logged per request, one line printed at start-up. SIGINT and SIGTERM stop them with exit
code 0, so that memray, which needs the process to end normally, finishes its capture.

Environment:

``PORT``
    the port to listen on when ``--port`` is not given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 64 * 1024
"""Request bodies above this many bytes are refused (413) without being read."""

ORDER_SHAPE = 'expected {"lines": [{"item_id": int >= 0, "quantity": int >= 1}, ...]}'

Order = list[tuple[int, int]]
"""An order's lines: (item id, quantity)."""


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON and keeps its connection open."""

    protocol_version = "HTTP/1.1"
    # Headers and body are buffered and sent in one piece when the request is done
    # (handle_one_request flushes), without Nagle's delay on small answers.
    wbufsize = -1
    disable_nagle_algorithm = True
    timeout = 60
    """Seconds an idle kept-alive connection is held open before its thread ends."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: nothing is written per request (nor per timed-out connection)."""

    def send_json(self, status: int, body: Any, *, close: bool = False) -> None:
        self.send_payload(status, json.dumps(body).encode(), close=close)

    def send_payload(self, status: int, payload: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if close:
            self.send_header("Connection", "close")  # also ends this connection's loop
        self.end_headers()
        self.wfile.write(payload)

    def read_body(self) -> bytes | None:
        """The request's body, or None once an error has been answered and the connection
        is to close (a body that cannot be read leaves the stream out of step)."""
        if "Transfer-Encoding" in self.headers:
            self.send_json(
                HTTPStatus.LENGTH_REQUIRED, {"error": "send a Content-Length"}, close=True
            )
            return None
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": "bad Content-Length"}, close=True)
            return None
        if int(length) > MAX_BODY:
            error = {"error": f"body over {MAX_BODY} bytes"}
            self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, error, close=True)
            return None
        return self.rfile.read(int(length))


def parse_order(payload: bytes) -> Order:
    """The order's lines; ValueError (saying what is expected) for anything else."""
    try:
        body = json.loads(payload)
        lines = [(line["item_id"], line["quantity"]) for line in body["lines"]]
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise ValueError(ORDER_SHAPE) from error
    if not lines or not all(_whole(item) and _whole(qty) and qty >= 1 for item, qty in lines):
        raise ValueError(ORDER_SHAPE)
    return lines


def _whole(value: object) -> bool:
    return type(value) is int and value >= 0


def leak_plan(variable: str) -> tuple[int, int]:
    """``(every, size)``: keeping a bytes object of ``size`` bytes once in ``every`` calls
    retains the environment variable's N bytes per call on average; ``(0, 0)`` when unset.

    A bytes object of n bytes takes ``sys.getsizeof(b"") + n``, its slot in a list 8 more,
    so the smallest pair takes 42 bytes: below that, one call in ``ceil(42 / N)`` keeps
    ``N x that``."""
    text = os.environ.get(variable, "") or "0"
    if not text.isdigit():
        sys.exit(f"{variable} must be a whole number of bytes, not {text!r}")
    per_call = int(text)
    if per_call == 0:
        return 0, 0
    overhead = sys.getsizeof(b"") + 8
    every = math.ceil((overhead + 1) / per_call)
    return every, per_call * every - overhead


class QuietServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that keeps quiet when a client drops its connection."""

    daemon_threads = True  # connection threads never hold up the exit

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exception(), ConnectionError):  # a reset is the client's doing
            super().handle_error(request, client_address)


def serve(name: str, handler: type[BaseHTTPRequestHandler], argv: list[str] | None) -> int:
    """Listen on 127.0.0.1 until SIGINT or SIGTERM; the exit code."""
    parser = argparse.ArgumentParser(prog=f"python -m examples.queue_service.{name}")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: $PORT)")
    args = parser.parse_args(argv)
    port = args.port
    if port is None:
        if not os.environ.get("PORT", "").isdigit():
            parser.error("give --port N, or the port in the environment as PORT")
        port = int(os.environ["PORT"])
    # SIGINT and SIGTERM stop the server as Ctrl-C does: KeyboardInterrupt in serve_forever.
    # SIGINT too, as a process started in the background by a shell inherits it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server = QuietServer(("127.0.0.1", port), handler)
    except OSError as error:
        sys.exit(f"{name}: cannot listen on 127.0.0.1:{port}: {error.strerror}")
    try:
        print(f"{name}: listening on http://127.0.0.1:{server.server_port}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
