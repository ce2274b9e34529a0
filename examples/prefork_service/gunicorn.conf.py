"""gunicorn settings for the prefork example: three sync workers, each numbered."""

import os

workers = 3
worker_class = "sync"
accesslog = None


def post_fork(server, worker):
    # Workers import the app after this (no preload), so it sees its number.
    os.environ["PREFORK_WORKER"] = str(worker.age)


control_socket_disable = True  # no socket in $HOME shared by concurrent runs
