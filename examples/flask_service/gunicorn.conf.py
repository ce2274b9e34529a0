"""gunicorn settings for the Flask example: two sync workers sharing one SQLite file.

The app is preloaded: the arbiter imports it once, which creates and seeds the database
(``FLASK_DATABASE``, a temporary file unless set), then forks the workers. A worker must
not use the arbiter's database connections, so each drops them after the fork (SQLAlchemy's
advice for forked processes) and opens its own. The file is removed when gunicorn exits."""

import os
import shutil
import tempfile

if not os.environ.get("FLASK_DATABASE"):
    _folder = tempfile.mkdtemp(prefix="memgate-flask-")
    os.environ["FLASK_DATABASE"] = os.path.join(_folder, "shop.sqlite3")
else:
    _folder = ""

workers = 2
worker_class = "sync"
preload_app = True
accesslog = None
control_socket_disable = True  # no socket in $HOME shared by concurrent runs


def post_fork(server, worker):
    from examples.flask_service.app import engine

    engine.dispose(close=False)


def on_exit(server):
    if _folder:
        shutil.rmtree(_folder, ignore_errors=True)
