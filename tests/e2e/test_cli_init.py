"""``memgate init`` as a user runs it: the demo's command, a service with an OpenAPI
document, and the commands it must refuse."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.support import REPO, memgate, one_line_error

pytestmark = pytest.mark.e2e

DEMO = [
    "python", "-m", "uvicorn", "examples.demo_service.app:app",
    "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
]  # fmt: skip

OPENAPI_SERVICE = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

DOCUMENT = {"openapi": "3.0.0", "paths": {
    "/healthz": {"get": {}},
    "/items": {"get": {}},
    "/items/{item_id}": {"get": {}},
    "/orders": {"post": {}},
    "/stats/today": {"get": {}, "delete": {}},
    "/x\\u00b2": {"get": {}},
    '/"); import os; os.system("touch injected"); ("': {"get": {}},
}}

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        known = {"/openapi.json", "/healthz", "/items", "/stats/today"}
        body = json.dumps(DOCUMENT if self.path == "/openapi.json" else {}).encode()
        self.send_response(200 if self.path in known else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _no_service_left(marker: str, cwd: Path) -> None:
    """No process that ``memgate init`` started, in ``cwd``, is left running."""
    left = [
        p
        for p in psutil.process_iter(["cmdline", "cwd"])
        if marker in " ".join(p.info["cmdline"] or []) and p.info["cwd"] == str(cwd)
    ]
    assert not left, left


def test_init_on_the_demos_command_writes_a_scenario_memgate_runs(tmp_path: Path) -> None:
    out = tmp_path / "scenarios"
    done = memgate("init", "--name", "first", "--out", str(out), "--", *DEMO, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert f"memgate run {out / 'first.toml'}" in done.stdout
    _no_service_left("examples.demo_service.app:app --host 127.0.0.1 --port", REPO)
    text = (out / "first.toml").read_text()
    assert 'health_url = "http://127.0.0.1:{port}/health"' in text
    assert 'locustfile = "first_locustfile.py"' in text
    # The comment names the file as the command printed it (it said "first.toml").
    assert f"#   memgate run {out / 'first.toml'}\n" in text
    assert f"#   memgate check {out / 'first.toml'} --record" in text
    ran = memgate(
        "run", str(out / "first.toml"), "--requests", "2000", "--warmup", "200", "--quiet",
        "--out", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (tmp_path / "run" / "result.json").is_file()
    # It ends on what to do next: the HTML report, and a check that starts the history.
    result, html = tmp_path / "run" / "result.json", tmp_path / "run" / "report.html"
    assert f"its report: memgate report {result} --format html --out {html}" in ran.stdout
    assert f"next: memgate check {out / 'first.toml'} --record" in ran.stdout
    # Nothing is written over.
    again = memgate("init", "--name", "first", "--out", str(out), "--", *DEMO, cwd=REPO)
    assert again.returncode == 2 and "exists: memgate init writes over nothing" in one_line_error(
        again
    )


def test_each_get_endpoint_without_parameters_of_its_openapi_document_is_a_task(
    tmp_path: Path,
) -> None:
    (tmp_path / "api.py").write_text(textwrap.dedent(OPENAPI_SERVICE))
    done = memgate("init", "--name", "api", "--", "python", "api.py", "{port}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    locustfile = (tmp_path / "api_locustfile.py").read_text(encoding="utf-8")
    assert "self.client.get('/items')" in locustfile
    assert "self.client.get('/stats/today')" in locustfile
    # A path that makes no identifier, and one that would end a double-quoted string.
    assert "def get_x(self) -> None:\n        self.client.get('/x\u00b2')" in locustfile
    assert """self.client.get('/"); import os; os.system("touch injected"); ("')""" in locustfile
    for left_out in ("'/items/{item_id}'", "'/orders'", "'/healthz'"):
        assert left_out not in locustfile
    assert '/healthz"' in (tmp_path / "api.toml").read_text()
    compile(locustfile, "api_locustfile.py", "exec")


@pytest.mark.parametrize(
    ("command", "code", "said"),
    [
        (["python", "-c", "pass"], 2, "write {port} where the port goes"),
        (
            ["python", "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)", "{port}"],
            3,
            "exited with code 3: boom",
        ),
        (["no-such-program-here", "{port}"], 3, "cannot start 'no-such-program-here'"),
        ([], 2, "give the command that starts the service after --"),
    ],
    ids=["no port", "exits", "not found", "no command"],
)
def test_a_command_init_cannot_use_is_one_line(
    tmp_path: Path, command: list[str], code: int, said: str
) -> None:
    done = memgate("init", "--out", str(tmp_path), "--", *command, cwd=tmp_path)
    assert done.returncode == code and said in one_line_error(done), done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["api\n", "../api", ""], ids=["line break", "folder", "empty"])
def test_a_name_that_is_no_scenario_name_is_one_line(tmp_path: Path, name: str) -> None:
    command = ["python", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    done = memgate("init", "--name", name, "--", *command, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert one_line_error(done) == (
        f"memgate: error: --name {name!r}: letters, digits, '.', '_' and '-' only"
    )
    assert not list(tmp_path.iterdir())


def test_a_service_that_exits_leaving_a_child_is_told_at_once_and_the_child_killed(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    done = memgate("init", "--", "sh", "-c", "sleep 60 & exit 1", "sh", "{port}", cwd=tmp_path)
    assert done.returncode == 3
    assert one_line_error(done) == "memgate: error: the service exited with code 1: no output"
    assert time.monotonic() - started < 20
    _no_service_left("sleep 60", tmp_path)
    assert not list(tmp_path.iterdir())


LOUD_SERVICE = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

sys.stderr.write("starting " * 2**17 + "\\n")
sys.stderr.flush()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_a_service_that_writes_a_mebibyte_on_stderr_before_it_listens_is_probed(
    tmp_path: Path,
) -> None:
    (tmp_path / "loud.py").write_text(textwrap.dedent(LOUD_SERVICE))
    done = memgate("init", "--name", "loud", "--", "python", "loud.py", "{port}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert 'health_url = "http://127.0.0.1:{port}/health"' in (tmp_path / "loud.toml").read_text()
    _no_service_left("loud.py", tmp_path)


PREFORK = [
    "python", "-m", "gunicorn", "examples.prefork_service.app:app",
    "-c", "examples/prefork_service/gunicorn.conf.py", "--bind", "127.0.0.1:{port}",
]  # fmt: skip


def test_init_on_a_gunicorn_command_writes_a_scenario_that_follows_its_workers(
    tmp_path: Path,
) -> None:
    """Without follow_fork, the first run of a gunicorn app was refused after 13 s."""
    out = tmp_path / "scenarios"
    done = memgate("init", "--name", "pre", "--out", str(out), "--", *PREFORK, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "follow_fork = true" in (out / "pre.toml").read_text()
    ran = memgate(
        "run", str(out / "pre.toml"), "--requests", "3000", "--warmup", "300", "--quiet",
        "--out", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    forks = json.loads((tmp_path / "run" / "result.json").read_text())["capture"]["forks"]
    assert forks == 3  # gunicorn.conf.py's three workers, each read


def test_init_refuses_uvicorn_workers_before_anything_runs(tmp_path: Path) -> None:
    done = memgate("init", "--out", str(tmp_path), "--", *DEMO, "--workers", "2", cwd=REPO)
    assert done.returncode == 2
    assert one_line_error(done).startswith("memgate: error: uvicorn --workers 2: uvicorn spawns")
    assert not list(tmp_path.iterdir())


FLASK = [
    "python", "-m", "gunicorn", "examples.flask_service.app:app",
    "-c", "examples/flask_service/gunicorn.conf.py", "--bind", "127.0.0.1:{port}",
]  # fmt: skip
DJANGO = [
    "python", "-m", "gunicorn", "examples.django_service.wsgi:application",
    "-c", "examples/django_service/gunicorn.conf.py", "--bind", "127.0.0.1:{port}",
]  # fmt: skip


def test_init_on_the_flask_example_finds_its_get_routes_in_its_url_map(tmp_path: Path) -> None:
    out = tmp_path / "scenarios"
    done = memgate("init", "--name", "shop", "--out", str(out), "--", *FLASK, cwd=REPO)
    assert done.returncode == 0, done.stderr
    _no_service_left("examples.flask_service.app:app", REPO)
    locustfile = (out / "shop_locustfile.py").read_text()
    assert "from Flask's url_map" in locustfile
    assert "        self.client.get('/items')\n" in locustfile
    assert "self.client.get('/health')" not in locustfile  # the health path is no task
    for route in ("/items/<int:item_id>", "/orders/<int:order_id>"):
        assert f"    # self.client.get({route!r})  # a route with parameters" in locustfile
    assert "'/orders')" not in locustfile  # POST only
    assert "from Flask's url_map" in (out / "shop.toml").read_text().splitlines()[0]
    compile(locustfile, "shop_locustfile.py", "exec")


def test_init_on_the_django_example_finds_its_routes_in_its_url_resolver(tmp_path: Path) -> None:
    """gunicorn's master never imports the Django app: its workers answer."""
    out = tmp_path / "scenarios"
    done = memgate("init", "--name", "blog", "--out", str(out), "--", *DJANGO, cwd=REPO)
    assert done.returncode == 0, done.stderr
    _no_service_left("examples.django_service.wsgi:application", REPO)
    locustfile = (out / "blog_locustfile.py").read_text()
    assert "from Django's URL resolver" in locustfile
    assert "        self.client.get('/')\n" in locustfile
    for route in ("/articles/<int:article_id>/", "/authors/<int:author_id>/"):
        assert f"    # self.client.get({route!r})  # a route with parameters" in locustfile
    assert "from Django's URL resolver" in (out / "blog.toml").read_text().splitlines()[0]
    compile(locustfile, "blog_locustfile.py", "exec")
