"""Where a run was made: the repository and the service's folder in it, for the links
from reports to the service's lines on GitHub (a real git checkout in a folder)."""

from __future__ import annotations

import dataclasses
import datetime
import subprocess
from pathlib import Path

import pytest

from gate.provenance import collect, github_remote
from gate.report.html import render_html
from gate.report.markdown import render_markdown
from tests.support.reports import leak_report

NOW = datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC)


def _checkout(tmp_path: Path, origin: str | None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    if origin:
        git("remote", "add", "origin", origin)
    (tmp_path / "services" / "api").mkdir(parents=True)
    (tmp_path / "services" / "api" / "app.py").write_text("")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return tmp_path


def test_a_checkout_with_a_github_origin_is_linked_from_its_service_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    top = _checkout(tmp_path, "git@github.com:acme/shop.git")
    at_top = collect(NOW, top)
    assert at_top.repository == "https://github.com/acme/shop"
    assert at_top.repository_path == "" and at_top.commit is not None
    assert collect(NOW, top / "services" / "api").repository_path == "services/api"


def test_in_actions_the_checkouts_own_origin_names_its_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``actions/checkout`` sets ``origin`` of each checkout, and may fetch another
    repository into a folder of the workspace: links follow the checkout the service is
    in; the workflow's repository stands in only for the workspace's own checkout."""
    workspace = _checkout(tmp_path / "ws", None)
    other = _checkout(tmp_path / "ws" / "other", "https://github.example.com/acme/lib")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(workspace))
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/shop")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example.com")
    assert collect(NOW, workspace).repository == "https://github.example.com/acme/shop"
    assert collect(NOW, other).repository == "https://github.example.com/acme/lib"
    monkeypatch.delenv("GITHUB_ACTIONS")
    off_github = _checkout(tmp_path / "gl", "https://gitlab.com/acme/shop.git")
    assert collect(NOW, off_github).repository is None
    outside = tmp_path / "not-a-checkout"
    outside.mkdir()
    assert collect(NOW, outside).repository_path is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/shop.git", "https://github.com/acme/shop"),
        ("https://x-access-token:secret@github.com/acme/shop", "https://github.com/acme/shop"),
        ("ssh://git@github.com/acme/shop.git", "https://github.com/acme/shop"),
        ("git@github.com:acme/my.shop.git", "https://github.com/acme/my.shop"),
        ("https://github.com/acme/shop/extra", None),
        ("https://gitlab.com/acme/shop", None),
        ("", None),
    ],
)
def test_github_remotes(url: str, expected: str | None) -> None:
    assert github_remote(url) == expected


def test_a_remote_on_an_enterprise_server() -> None:
    server = "https://github.example.com"
    assert github_remote("git@github.example.com:acme/shop.git", server) == f"{server}/acme/shop"
    assert github_remote("https://github.com/acme/shop", server) is None


def test_uncommitted_changes_are_recorded_and_shown(tmp_path: Path) -> None:
    """A leak in the working tree showed the baseline's commit, and nothing else."""
    top = _checkout(tmp_path / "repo", None)
    assert collect(NOW, top).dirty == ()
    (top / "services" / "api" / "app.py").write_text("kept = []\n")
    (top / "notes.txt").write_text("untracked: not the service's code\n")
    changed = collect(NOW, top / "services" / "api").dirty
    assert changed == ("services/api/app.py",)
    (tmp_path / "elsewhere").mkdir()
    assert collect(NOW, tmp_path / "elsewhere").dirty is None  # not a checkout
    report = leak_report()
    provenance = dataclasses.replace(report.result.provenance, dirty=changed)
    shown = dataclasses.replace(
        report, result=dataclasses.replace(report.result, provenance=provenance)
    )
    said = "1 file changed since the commit: services/api/app.py"
    assert said in render_markdown(shown) and said in render_html(shown)
