"""The queue example's background worker: jobs arrive over HTTP, a thread processes them.

Run from the repository's root: ``python -m examples.queue_service.worker --port N``
(the port defaults to ``$PORT``). The order API (``api.py``) hands it its orders.

- ``GET /health``: 200 ``{"status": "ok"}``.
- ``POST /jobs`` with an order, ``{"lines": [{"item_id": int, "quantity": int}, ...]}``:
  202 ``{"job": id}`` once it is queued; 400 for anything else, 503 if the queue is full.
- ``GET /jobs/{id}``: 200 and the result, 202 ``{"status": "queued"}`` while it waits, 404
  for an id never given or whose result has been dropped.

One thread takes the jobs off a bounded ``queue.Queue`` in order, and keeps the last 200
results (enough for the locustfile, which asks for its users' last 20 orders, and full
within ``scenarios/services.toml``'s warm-up): in steady state nothing grows.

Environment:

``WORKER_LEAK_BYTES=N``
    every processed job retains N bytes forever on average (a true leak), on the line
    marked ``# planted leak``: a bytes object sized so that it and its slot in a list come
    to N bytes. The smallest such pair takes 42 bytes, so below that one job in every
    ``ceil(42 / N)`` keeps ``N x that`` bytes.
unset
    nothing outlives its job but the last 200 results.
"""

from __future__ import annotations

import collections
import itertools
import queue
import re
import sys
import threading
from http import HTTPStatus
from typing import Any

from examples.queue_service.jsonhttp import JsonHandler, Order, leak_plan, parse_order, serve

QUEUE_SIZE = 10_000
RESULTS_KEPT = 200

LEAK_EVERY, LEAK_SIZE = leak_plan("WORKER_LEAK_BYTES")
_retained: list[bytes] = []

_jobs: queue.Queue[tuple[int, Order]] = queue.Queue(QUEUE_SIZE)
_job_ids = itertools.count(1)
_lock = threading.Lock()  # guards the two below, so a job is always in one or the other
_queued: set[int] = set()
_results: collections.OrderedDict[int, dict[str, Any]] = collections.OrderedDict()

_JOB_PATH = re.compile(r"/jobs/(\d{1,18})")


def submit(lines: Order) -> int:
    """Queue a job; its id. queue.Full when the worker is that far behind."""
    with _lock:
        job_id = next(_job_ids)
        _jobs.put_nowait((job_id, lines))
        _queued.add(job_id)
    return job_id


def job_status(job_id: int) -> tuple[int, dict[str, Any]]:
    with _lock:
        result = _results.get(job_id)
        queued = job_id in _queued
    if result is not None:
        return HTTPStatus.OK, result
    if queued:
        return HTTPStatus.ACCEPTED, {"status": "queued"}
    return HTTPStatus.NOT_FOUND, {"error": f"no job {job_id}, or its result was dropped"}


def process_job(job_id: int, lines: Order) -> dict[str, Any]:
    """The job's result: what the order comes to."""
    if LEAK_EVERY and job_id % LEAK_EVERY == 0:
        _retained.append(bytes(LEAK_SIZE))  # planted leak
    return {
        "job": job_id,
        "status": "done",
        "lines": len(lines),
        "total_quantity": sum(quantity for _, quantity in lines),
        "total_cents": sum(price_cents(item_id) * quantity for item_id, quantity in lines),
    }


def price_cents(item_id: int) -> int:
    return (item_id * 7919) % 100_000


def work() -> None:
    """The worker thread: process the queued jobs one after another, forever."""
    while True:
        job_id, lines = _jobs.get()
        try:
            result = process_job(job_id, lines)
        except Exception as error:  # one bad job must not stop the thread
            result = {"job": job_id, "status": "failed", "error": repr(error)}
        with _lock:
            _queued.discard(job_id)
            _results[job_id] = result
            if len(_results) > RESULTS_KEPT:
                _results.popitem(last=False)


class WorkerHandler(JsonHandler):
    def do_GET(self) -> None:
        job = _JOB_PATH.fullmatch(self.path)
        if self.path == "/health":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
        elif job is None:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        else:
            self.send_json(*job_status(int(job[1])))

    def do_POST(self) -> None:
        payload = self.read_body()
        if payload is None:
            return
        if self.path != "/jobs":
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            job_id = submit(parse_order(payload))
        except ValueError as error:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
        except queue.Full:
            self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the job queue is full"})
        else:
            self.send_json(HTTPStatus.ACCEPTED, {"job": job_id})


def main(argv: list[str] | None = None) -> int:
    threading.Thread(target=work, name="job-worker", daemon=True).start()
    return serve("worker", WorkerHandler, argv)


if __name__ == "__main__":
    sys.exit(main())
