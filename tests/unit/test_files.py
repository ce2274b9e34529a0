"""gate/_files.py: memgate reads only regular files, of a bounded size, and writes only
where a regular file may go (hostile inputs of issue 15, case 5)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gate import _files
from gate._files import read_input, write_atomic
from gate.cli import main
from gate.errors import InputError


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp, "cannot read result: Is a directory"),
        (lambda tmp: Path("/dev/zero"), "cannot read result: not a regular file"),
        (lambda tmp: tmp / "absent", "no such result file"),
    ],
)
def test_only_regular_files_are_read(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        read_input(path, "result")
    assert str(caught.value) == f"{path}: {reason}"


def test_a_fifo_is_refused_at_once_not_waited_for(fifo: Path) -> None:
    with pytest.raises(InputError, match="cannot read scenario: not a regular file"):
        read_input(fifo, "scenario")


def test_a_link_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "history.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="not a regular file"):
        read_input(link, "baseline")


def test_a_file_past_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_files, "MAX_INPUT_BYTES", 1024)
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 1025)
    with pytest.raises(InputError, match="larger than"):
        read_input(path, "result")
    path.write_bytes(b" " * 1024)
    assert read_input(path, "result") == b" " * 1024


@pytest.mark.parametrize("target", ["fifo", "/dev/full", "folder", "link to a device"])
def test_only_a_regular_file_is_written_over(tmp_path: Path, fifo: Path, target: str) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    link = tmp_path / "link"
    link.symlink_to("/dev/null")
    path = {"fifo": fifo, "/dev/full": Path("/dev/full"), "folder": folder}.get(target, link)
    before = os.lstat(path).st_mode
    with pytest.raises(InputError, match=f"cannot write {path}: "):
        write_atomic(path, b"report")
    assert os.lstat(path).st_mode == before  # still a FIFO, a device, a folder, a link
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_a_regular_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("old")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_ISREG(os.lstat(path).st_mode)


def test_the_commands_say_it_in_one_line_with_exit_2(
    fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "result-v1-leak256.json"
    assert main(["compare", str(fifo)]) == 2
    assert main(["report", str(fixture), "--out", str(fifo)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"memgate: error: {fifo}: cannot read result: not a regular file",
        f"memgate: error: cannot write {fifo}: not a regular file",
    ]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_log_opened_where_a_link_stands_replaces_the_link_not_its_target(
    tmp_path: Path,
) -> None:
    # A link at OUT/service.log had the file it points to truncated and overwritten.
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    log = tmp_path / "service.log"
    log.symlink_to(target)
    with _files.open_log(log) as out:
        out.write(b"the service's output\n")
    assert target.read_text() == "keep me"
    assert not log.is_symlink() and log.read_bytes() == b"the service's output\n"
    # A folder there is refused in one line.
    with pytest.raises(InputError, match=r"cannot write .*: Is a directory"):
        _files.open_log(tmp_path)
