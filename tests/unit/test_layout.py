"""gate/layout.py: the previous run's folder moved aside before a run writes its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gate.layout import Kept, NotKept, keep_previous, previous_folder


def a_run(folder: Path, marker: str = "one") -> Path:
    """A finished one-service run's folder holding ``marker`` in its result."""
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(marker)
    (folder / "report.json").write_text(marker)
    (folder / "service.log").write_text("")
    return folder


def hidden(parent: Path) -> list[str]:
    return sorted(name for name in os.listdir(parent) if name.startswith("."))


def test_the_previous_run_is_moved_whole_beside_the_folder(tmp_path: Path) -> None:
    out = a_run(tmp_path / "demo")
    assert keep_previous(out) == Kept(tmp_path / "demo.previous")
    assert not out.exists()
    assert (tmp_path / "demo.previous" / "result.json").read_text() == "one"
    assert previous_folder(out) == tmp_path / "demo.previous"


def test_only_one_previous_run_is_kept_and_nothing_is_left_behind(tmp_path: Path) -> None:
    a_run(tmp_path / "demo.previous", "older")
    out = a_run(tmp_path / "demo", "newer")
    assert keep_previous(out) == Kept(tmp_path / "demo.previous")
    assert (tmp_path / "demo.previous" / "result.json").read_text() == "newer"
    assert sorted(os.listdir(tmp_path)) == ["demo.previous"]


def test_nothing_to_keep_is_no_move(tmp_path: Path, monkeypatch) -> None:
    assert keep_previous(tmp_path / "demo") is None
    (tmp_path / "demo").mkdir()
    assert keep_previous(tmp_path / "demo") is None
    assert (tmp_path / "demo").is_dir() and not (tmp_path / "demo.previous").exists()
    monkeypatch.chdir(tmp_path / "demo")  # --out . in an empty folder
    assert keep_previous(Path(".")) is None
    assert previous_folder(Path(".")) == tmp_path / "demo.previous"
    assert previous_folder(Path("x/..")) == tmp_path / "demo.previous"


def test_a_run_of_several_services_is_kept(tmp_path: Path) -> None:
    # Killed while its services started: only a service's folder holds anything.
    out = tmp_path / "services"
    (out / "api").mkdir(parents=True)
    (out / "api" / "service.log").write_text("starting")
    assert keep_previous(out) == Kept(tmp_path / "services.previous")
    assert (tmp_path / "services.previous" / "api" / "service.log").read_text() == "starting"


def test_a_folder_with_no_run_in_it_stays_where_it_is(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    assert keep_previous(out) == NotKept(
        out, f"{out} holds no run's files (result.json, failure.json, service.log, load.log)"
    )
    assert (out / "notes.txt").read_text() == "mine"
    assert not previous_folder(out).exists()


def test_the_current_folder_is_never_moved(tmp_path: Path, monkeypatch) -> None:
    out = a_run(tmp_path / "demo")
    (out / "inside").mkdir()
    monkeypatch.chdir(out)
    assert keep_previous(Path(".")) == NotKept(Path("."), ". holds the current folder")
    monkeypatch.chdir(out / "inside")
    assert keep_previous(out) == NotKept(out, f"{out} holds the current folder")
    assert out.is_dir() and not previous_folder(out).exists()


def test_a_link_is_neither_followed_nor_moved(tmp_path: Path) -> None:
    target = a_run(tmp_path / "elsewhere")
    link = tmp_path / "demo"
    link.symlink_to(target)
    assert keep_previous(link) == NotKept(link, f"{link} is a symbolic link")
    assert link.is_symlink() and (target / "result.json").read_text() == "one"
    assert not previous_folder(link).exists()


@pytest.mark.parametrize("kind", ["link", "file", "foreign folder"])
def test_what_is_in_the_previous_folders_place_is_never_removed(tmp_path: Path, kind) -> None:
    out = a_run(tmp_path / "demo")
    previous = tmp_path / "demo.previous"
    precious = a_run(tmp_path / "precious")
    if kind == "link":
        previous.symlink_to(precious)
        why = "is a symbolic link"
    elif kind == "file":
        previous.write_text("mine")
        why = "is no folder"
    else:
        previous.mkdir()
        (previous / "notes.txt").write_text("mine")
        why = "holds no run's files (result.json, failure.json, service.log, load.log)"
    assert keep_previous(out) == NotKept(
        out, f"{previous} {why} (memgate replaces only a run's folder)"
    )
    assert (out / "result.json").read_text() == "one"
    assert (precious / "result.json").read_text() == "one"
    assert previous.is_symlink() if kind == "link" else previous.exists()


def test_a_failed_rename_puts_the_older_run_back(tmp_path: Path, monkeypatch) -> None:
    a_run(tmp_path / "demo.previous", "older")
    out = a_run(tmp_path / "demo", "newer")
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        if Path(str(src)) == out:
            raise PermissionError(13, "Permission denied")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    assert keep_previous(out) == NotKept(out, f"{out} could not be renamed (Permission denied)")
    assert (tmp_path / "demo.previous" / "result.json").read_text() == "older"
    assert (out / "result.json").read_text() == "newer"
    assert hidden(tmp_path) == []


def test_a_run_dropped_by_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    a_run(tmp_path / ".demo.previous.k3y_9.old")
    a_run(tmp_path / ".demo.previous.other.x.old")  # not one of demo's: left alone
    out = a_run(tmp_path / "demo")
    assert keep_previous(out) == Kept(tmp_path / "demo.previous")
    assert hidden(tmp_path) == [".demo.previous.other.x.old"]


def test_an_auto_run_of_several_services_decided_by_counting_is_kept(tmp_path: Path) -> None:
    """Its services' folders hold their verdicts; their logs are in ``counted/``."""
    out = tmp_path / "shop"
    (out / "api").mkdir(parents=True)
    (out / "api" / "result.json").write_text("{}")
    (out / "counted" / "api").mkdir(parents=True)
    (out / "counted" / "api" / "service.log").write_text("")
    (out / "counted" / "load.log").write_text("")
    assert isinstance(keep_previous(out), Kept)
    assert (tmp_path / "shop.previous" / "api" / "result.json").exists()
    assert not out.exists()
