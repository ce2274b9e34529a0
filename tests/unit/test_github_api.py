"""The pull request's comment, against a local server that answers the REST API's calls
memgate makes (list a pull request's comments, add one, update one) as GitHub does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.github_api import MARKER, upsert_comment
from tests.support.merged import doc, write


class FakeGitHub:
    """Pull request 7 of acme/shop: its comments, and every call made."""

    def __init__(self, comments: list[dict[str, Any]], refuse: int | None = None) -> None:
        self.comments = comments
        self.calls: list[tuple[str, str, str]] = []
        self.refuse = refuse
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                sent = json.loads(self.rfile.read(size)) if size else None
                fake.calls.append((method, self.path, self.headers["Authorization"]))
                if fake.refuse:
                    return self._answer(fake.refuse, {"message": "Resource not accessible"})
                if method == "GET" and self.path.startswith("/repos/acme/shop/issues/7/comments"):
                    page = int(self.path.rsplit("page=", 1)[1])
                    return self._answer(200, fake.comments[(page - 1) * 100 : page * 100])
                if method == "POST" and self.path == "/repos/acme/shop/issues/7/comments":
                    made = {"id": 1000 + len(fake.comments), "body": sent["body"]}
                    fake.comments.append(made)
                    return self._answer(201, made)
                if method == "PATCH" and self.path.startswith("/repos/acme/shop/issues/comments/"):
                    number = int(self.path.rsplit("/", 1)[1])
                    for comment in fake.comments:
                        if comment["id"] == number:
                            comment["body"] = sent["body"]
                            return self._answer(200, comment)
                return self._answer(404, {"message": "Not Found"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    others = [{"id": n, "body": f"a reviewer's comment {n}"} for n in range(150)]
    fake = FakeGitHub(others)
    yield fake
    fake.server.shutdown()


def test_the_comment_is_added_once_then_updated_on_each_push(github: FakeGitHub) -> None:
    first = upsert_comment(github.api, "acme/shop", 7, "t0ken", "## memgate: FAIL")
    assert first == ("created", 1150)
    again = upsert_comment(github.api, "acme/shop", 7, "t0ken", "## memgate: PASS")
    assert again == ("updated", 1150)
    ours = [c for c in github.comments if MARKER in c["body"]]
    assert len(ours) == 1 and ours[0]["body"].startswith("## memgate: PASS")
    # Two pages of others looked through before the first was added; the token sent.
    assert [c[0] for c in github.calls] == ["GET", "GET", "POST", "GET", "GET", "PATCH"]
    assert {c[2] for c in github.calls} == {"Bearer t0ken"}


def test_a_refusal_is_one_line_that_names_the_permission() -> None:
    fake = FakeGitHub([], refuse=403)
    try:
        with pytest.raises(Exception) as refused:
            upsert_comment(fake.api, "acme/shop", 7, "t0ken", "body")
    finally:
        fake.server.shutdown()
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        "GitHub refused GET /repos/acme/shop/issues/7/comments: HTTP 403: Resource not"
        " accessible (the job needs permissions: pull-requests: write)"
    )


def _pull_request_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api: str) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_API_URL": api,
        "GITHUB_TOKEN": "t0ken",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)


def test_memgate_comment_posts_the_checks_summary(
    github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _pull_request_env(monkeypatch, tmp_path, github.api)
    write(tmp_path / "out" / "demo", doc("demo", "fail"))
    assert main(["comment", str(tmp_path / "out")]) == 0
    assert "created the comment on pull request #7" in capsys.readouterr().out
    (ours,) = [c for c in github.comments if MARKER in c["body"]]
    assert ours["body"].startswith("## ") and "memgate merge: FAIL" in ours["body"]
    assert main(["comment", str(tmp_path / "out")]) == 0
    assert "updated the comment" in capsys.readouterr().out
    assert len([c for c in github.comments if MARKER in c["body"]]) == 1


def test_memgate_comment_outside_a_pull_request_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _pull_request_env(monkeypatch, tmp_path, "http://127.0.0.1:9")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    write(tmp_path / "out" / "demo", doc("demo", "fail"))
    assert main(["comment", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr()  # inside Actions, errors go to standard output
    said = [line for line in (printed.out + printed.err).splitlines() if "error" in line]
    assert said == [
        "memgate: error: the workflow ran for push, not a pull request: there is no pull"
        " request to comment on"
    ]
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.delenv("GITHUB_TOKEN")
    assert main(["comment", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr()
    assert "no $GITHUB_TOKEN" in printed.out + printed.err
