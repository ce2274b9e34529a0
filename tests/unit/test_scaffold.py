"""``gate.scaffold`` against hostile services, names and OpenAPI documents: a one-line error
or a locustfile that compiles, never a hang, and no process of the service left."""

from __future__ import annotations

import ast
import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from gate import scaffold as init_module
from gate.errors import InputError, RunError
from gate.scaffold import init, locustfile_text
from gate.service import probe as probe_module
from gate.service.probe import NO_ROUTES, SOURCES, Probed, probe, same_origin_links
from tests.support.agent import load_agent, load_beside

SERVES_AFTER_A_MEBIBYTE_ON_STDERR = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

sys.stderr.write("x" * 2**20 + "\\n")
sys.stderr.flush()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _left_in(folder: Path, within: float = 5.0) -> list[psutil.Process]:
    """The processes but this one still running in ``folder``, where the test started the
    service, ``within`` seconds from now: a process sent SIGKILL takes a moment to go."""
    deadline = time.monotonic() + within
    while True:
        try:
            left = [
                proc
                for proc in psutil.process_iter(["cwd", "status"])
                if proc.info["cwd"] == str(folder)
                and proc.info["status"] != psutil.STATUS_ZOMBIE
                and proc.pid != os.getpid()
            ]
        except OSError:  # one ended while listed: psutil 6.0 (the floor) raises for it
            time.sleep(0.05)
            continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.mark.parametrize("name", ["api\n", "api\r", "api\n.toml", "", "../api", "a b", ".api"])
def test_a_name_that_is_no_scenario_name_is_refused_before_anything_runs(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(InputError) as refused:
        init(["false", "{port}"], name=name, out=tmp_path)
    assert str(refused.value) == f"--name {name!r}: letters, digits, '.', '_' and '-' only"
    assert len(str(refused.value).splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_path_that_makes_no_identifier_makes_a_task_that_compiles() -> None:
    assert locustfile_text("api", ["/x²"], "/health", SOURCES["openapi"]) == textwrap.dedent(
        '''\
        """The load of scenario api, written by memgate init:
        one task per GET route without parameters, from its OpenAPI document."""

        from locust import HttpUser, constant, task


        class Visitor(HttpUser):
            wait_time = constant(0)

            @task
            def get_x(self) -> None:
                self.client.get('/x²')
        '''
    )


HOSTILE_PATHS = [
    "/x²",
    "/x³",
    "/\u210c",  # BLACK-LETTER CAPITAL H: NFKC makes it H in an identifier
    "/١٢",
    "/a_b",
    "/a-b",
    "/",
    "/'",
    '/"',
    "/\\",
    "/a\nb",
    "/\u2028",
    "/\x00",
    "/\udcff",
    '/")\nimport os\nos.system("echo injected")\n("',
    "/'''\nraise SystemExit\n'''",
]


def test_no_path_of_a_document_ends_its_string_or_makes_a_bad_name() -> None:
    source = locustfile_text("api", HOSTILE_PATHS, "/health")
    tree = ast.parse(source)
    (visitor,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    tasks = [node for node in visitor.body if isinstance(node, ast.FunctionDef)]
    names = [task.name for task in tasks]
    assert len(set(names)) == len(HOSTILE_PATHS)
    assert all(name.isascii() and name.isidentifier() for name in names), names
    requested = []
    for task in tasks:
        (statement,) = task.body
        assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
        (argument,) = statement.value.args
        assert isinstance(argument, ast.Constant)
        requested.append(argument.value)
    assert requested == HOSTILE_PATHS
    # Nothing else at the top: the imports and the class.
    assert [type(node) for node in tree.body] == [ast.Expr, ast.ImportFrom, ast.ClassDef]


def test_a_locustfile_that_does_not_compile_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(init_module, "probe", lambda *a, **k: Probed("/health", ("/x",)))
    monkeypatch.setattr(init_module, "locustfile_text", lambda *a: "def get_x²(self): pass\n")
    with pytest.raises(RunError, match=r"api_locustfile.py does not compile \(invalid charac"):
        init(["serve", "{port}"], name="api", out=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_service_that_exits_leaving_a_child_holding_its_stderr_is_told_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(RunError, match=r"^the service exited with code 1: no output$"):
        probe(["sh", "-c", "sleep 60 & exit 1", "sh", "{port}"], health=None, timeout=30)
    assert time.monotonic() - started < 10
    assert not _left_in(tmp_path)


def test_a_service_that_leaves_its_process_group_is_killed_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    command = ["sh", "-c", "setsid sleep 60 & sleep 60", "sh", "{port}"]
    with pytest.raises(RunError, match="answered none of /health with 2xx"):
        probe(command, health="/health", timeout=1)
    assert not _left_in(tmp_path)


def test_a_service_that_writes_a_mebibyte_on_stderr_before_it_listens_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loud.py").write_text(SERVES_AFTER_A_MEBIBYTE_ON_STDERR)
    found = probe([sys.executable, "loud.py", "{port}"], health=None, timeout=10)
    assert found == Probed("/health")
    assert not _left_in(tmp_path)


def test_the_last_line_on_stderr_after_a_mebibyte_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = "import sys; sys.stderr.write('x' * 2**20 + '\\nport taken\\n'); sys.exit(4)"
    with pytest.raises(RunError, match=r"^the service exited with code 4: port taken$"):
        probe([sys.executable, "-c", code, "{port}"], health=None, timeout=10)


def test_a_service_never_healthy_is_told_with_its_last_line_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = "import sys, time; sys.stderr.write('listening on 8000\\n'); time.sleep(60)"
    with pytest.raises(RunError) as failed:
        probe([sys.executable, "-c", code, "{port}"], health="/health", timeout=1.5)
    assert str(failed.value).endswith(
        "within 1.5 s: give its health path with --health PATH"
        " (its last line on standard error: listening on 8000)"
    )
    assert not _left_in(tmp_path)


def test_an_out_that_is_no_folder_is_refused_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "taken").touch()
    with pytest.raises(InputError, match=r"^--out .*/taken: not a folder$"):
        init(["false", "{port}"], name="api", out=tmp_path / "taken")


def test_an_out_made_unwritable_while_the_service_ran_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def probe_while_a_file_takes_its_parent(*args: object, **kwargs: object) -> Probed:
        (tmp_path / "taken").touch()
        return Probed("/health")

    monkeypatch.setattr(init_module, "probe", probe_while_a_file_takes_its_parent)
    with pytest.raises(InputError, match=r"^cannot write in .*/taken/api: Not a directory$"):
        init(["serve", "{port}"], name="api", out=tmp_path / "taken" / "api")


TRICKLES_ITS_DOCUMENT = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"openapi": "3.0.0", "paths": {"/items": {"get": {}}}}' * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path != "/openapi.json":
            self.wfile.write(body)
            return
        for byte in body:  # a byte every 0.2 s: each read is quick, the whole is not
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.2)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_an_openapi_document_trickled_byte_by_byte_is_left_out_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(probe_module, "OPENAPI_READ_S", 1.0)
    (tmp_path / "slow.py").write_text(TRICKLES_ITS_DOCUMENT)
    started = time.monotonic()
    found = probe([sys.executable, "slow.py", "{port}"], health=None, timeout=10)
    assert found == Probed("/health")
    assert time.monotonic() - started < 8  # about 1 s of the document, not 1,100 s
    assert not _left_in(tmp_path)


@pytest.mark.parametrize("health", ["health", "/he\x1b[2Jalth", "/a b", "/\u00e9t\u00e9", "/x\n"])
def test_a_health_path_that_is_no_url_path_is_refused_before_anything_runs(
    tmp_path: Path, health: str
) -> None:
    with pytest.raises(
        InputError, match=r"^--health .*: a path of visible ASCII, such as /health$"
    ):
        init(["false", "{port}"], name="api", out=tmp_path, health=health)


@pytest.mark.parametrize(
    "command",
    [
        ["gunicorn", "-w", "2", "app:app", "--bind", "127.0.0.1:{port}"],
        ["/srv/venv/bin/gunicorn", "app:app", "--bind", "127.0.0.1:{port}"],
        ["python", "-m", "gunicorn", "app:app", "-c", "gunicorn.conf.py"],
    ],
)
def test_a_gunicorn_command_gets_follow_fork(command: list[str]) -> None:
    """gunicorn forks its workers, one at least, and they serve: without follow_fork the
    first run was refused after 13 s ("set follow_fork = true")."""
    import tomllib

    assert init_module.server_forks(command)
    text = init_module.scenario_text(
        command, ".", "/health", "api_locustfile.py", NO_ROUTES, "a.toml"
    )
    assert tomllib.loads(text).get("profile") is None
    forked = init_module.scenario_text(
        command, ".", "/health", "api_locustfile.py", NO_ROUTES, "a.toml", follow_fork=True
    )
    assert tomllib.loads(forked)["profile"] == {"follow_fork": True}


def test_uvicorn_workers_are_refused_with_the_reason_and_one_worker_is_not() -> None:
    for workers in (["--workers", "4"], ["--workers=2"]):
        with pytest.raises(InputError, match=r"^uvicorn --workers [24]: uvicorn spawns"):
            init_module.server_forks(["python", "-m", "uvicorn", "app:app", *workers])
    assert not init_module.server_forks(["uvicorn", "app:app", "--workers", "1"])
    assert not init_module.server_forks(["python", "app.py", "{port}"])


def test_the_links_of_a_page_are_its_own_paths_each_once() -> None:
    html = """<html><body>
    <a href="/items">items</a> <a href="/items?page=2">next</a> <a href="/items#top">top</a>
    <a href="about">about</a> <a href="./blog/">blog</a> <a href="//evil.example/x">x</a>
    <a href="https://evil.example/y">y</a> <a href="mailto:me@example.com">mail</a>
    <a href="javascript:void(0)">js</a> <a name="anchor">no href</a> <A HREF="/Up">up</A>
    <link href="/style.css"> <a href="/items">again</a>
    """
    assert same_origin_links(html) == ["/items", "/about", "/blog/", "/Up"]
    many = "".join(f'<a href="/p{i}">' for i in range(50))
    assert same_origin_links(many) == [f"/p{i}" for i in range(20)]
    assert same_origin_links("<a href='/ok'><<<&&& </b") == ["/ok"]


def test_routes_with_parameters_are_commented_examples_that_cannot_become_code() -> None:
    params = ["/posts/<int:pk>/", "/items/{item_id}", "/x\nimport os; os.system('echo no')"]
    source = locustfile_text("blog", ["/posts/"], "/health", SOURCES["django"], params)
    compile(source, "blog_locustfile.py", "exec")
    assert source.startswith(
        '"""The load of scenario blog, written by memgate init:\n'
        'one task per GET route without parameters, from Django\'s URL resolver."""'
    )
    assert (
        "    # self.client.get('/posts/<int:pk>/')  # a route with parameters: fill them in\n"
        in source
    )
    assert "# self.client.get(\"/x\\nimport os; os.system('echo no')\")" in source
    tree = ast.parse(source)
    (visitor,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    tasks = [node.name for node in visitor.body if isinstance(node, ast.FunctionDef)]
    assert tasks == ["get_posts"]  # the comments are no code
    # No route found: the health path, and the docstring says so.
    bare = locustfile_text("api", [], "/health")
    assert f"{NO_ROUTES}." in bare and "self.client.get('/health')" in bare
    assert "#" not in bare


def test_the_agent_lists_a_flask_apps_get_rules() -> None:
    import flask

    app = flask.Flask("routes_under_test")
    app.add_url_rule("/items", "items", lambda: "")
    app.add_url_rule("/items/<int:item_id>", "item", lambda item_id: "")
    app.add_url_rule("/orders", "orders", lambda: "", methods=["POST"])
    found = load_beside("routes").list_routes()
    assert found["framework"] == "flask"
    routes = {route["path"]: route["params"] for route in found["routes"]}
    assert routes["/items"] is False and routes["/items/<int:item_id>"] is True
    assert "/orders" not in routes
    assert not any(path.startswith("/static") for path in routes)
    del app


def test_the_agent_lists_a_starlette_apps_get_routes_and_mounts() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/list", ok), Route("/{pk}", ok)])
    app = Starlette(
        routes=[
            Route("/health", ok),
            Route("/users/{user_id}", ok),
            Route("/orders", ok, methods=["POST"]),
            Mount("/api", app=inner),
        ]
    )
    routes = dict(load_beside("routes")._starlette_routes())  # any other app of this process's too
    expected = {"/health": False, "/users/{user_id}": True, "/api/list": False, "/api/{pk}": True}
    assert expected.items() <= routes.items()
    assert "/orders" not in routes and "/list" not in routes  # the mounted app: under /api
    del app, inner


def test_the_agent_writes_its_routes_once_asked_and_a_failure_as_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = load_agent("memgate_agent_routes")
    agent._routes[0] = routes = load_beside("routes")

    def broken() -> list[tuple[str, bool]]:
        raise RuntimeError("a urlconf that raises\nsecond line")

    monkeypatch.setattr(routes, "_flask_routes", broken)
    worker = threading.Thread(target=agent._routes_when_asked, args=(str(tmp_path),))
    worker.start()
    (tmp_path / agent.ROUTES_REQUEST).touch()
    worker.join(timeout=5)
    (written,) = tmp_path.glob("routes.*.json")
    assert json.loads(written.read_text()) == {"error": "RuntimeError: a urlconf that raises"}


SERVES_LINKS = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PAGE = b'<a href="/health">h</a><a href="/a">a</a><a href="/gone">g</a><a href="b?x=1">b</a>'

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        known = {"/": PAGE, "/health": b"ok", "/a": b"a", "/b": b"b"}
        body = known.get(self.path, b"")
        self.send_response(200 if self.path in known else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_without_a_framework_the_root_pages_links_that_answer_are_the_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "links.py").write_text(SERVES_LINKS)
    started = time.monotonic()
    found = probe([sys.executable, "links.py", "{port}"], health=None, timeout=10)
    assert found == Probed("/health", ("/a", "/b"), (), SOURCES["links"])
    assert time.monotonic() - started < 5  # the agent said "no framework": not waited for
    assert not _left_in(tmp_path)
