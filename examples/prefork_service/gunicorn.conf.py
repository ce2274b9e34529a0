"""gunicorn settings for the prefork example: three sync workers, each numbered.

``PREFORK_MAX_REQUESTS=N`` recycles each worker after about N requests (gunicorn's
``max_requests``, the usual way to keep a leaking worker's memory in check): the heap
summed over the workers becomes a sawtooth."""

import os

workers = 3
worker_class = "sync"
accesslog = None
max_requests = int(os.environ.get("PREFORK_MAX_REQUESTS", "0") or 0)


def post_fork(server, worker):
    # Workers import the app after this (no preload), so it sees its number.
    os.environ["PREFORK_WORKER"] = str(worker.age)


control_socket_disable = True  # no socket in $HOME shared by concurrent runs
