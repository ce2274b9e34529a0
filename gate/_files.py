"""Small file helpers shared by the edge modules."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from gate.errors import InputError

MAX_INPUT_BYTES = 256 * 2**20
"""The most memgate reads of one file: more is no scenario, result or history of its."""


def last_line(path: Path) -> str:
    """The last non-empty line of a log, for a one-line error."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else "(no output)"


def read_input(path: Path, kind: str, fail: Callable[[str], InputError] | None = None) -> bytes:
    """The bytes of a file given to memgate; if there are none, ``fail(reason)``
    (default: :func:`naming` the file). ``kind`` names the file in the reason (``no such
    result file``); an empty one leaves it out (``no such file``)."""
    fail = fail or naming(path)
    of = f" {kind}" if kind else ""
    try:
        # Without blocking: a FIFO with no writer would wait for ever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise fail(f"no such{of} file") from None
    except OSError as exc:
        raise fail(f"cannot read{of}: {exc.strerror}") from None
    why = _not_regular(os.fstat(fd).st_mode)
    if why:  # a folder, a FIFO, a device such as /dev/zero
        os.close(fd)
        raise fail(f"cannot read{of}: {why}")
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise fail(f"cannot read{of}: {exc.strerror}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise fail(f"cannot read{of}: larger than {MAX_INPUT_BYTES // 2**20} MiB")
    return data


def _not_regular(mode: int) -> str | None:
    """Why a file of this mode is no regular file memgate may read or replace, or ``None``."""
    if stat.S_ISREG(mode):
        return None
    return os.strerror(errno.EISDIR) if stat.S_ISDIR(mode) else "not a regular file"


def naming(path: Path) -> Callable[[str], InputError]:
    """An :class:`InputError` for a reason, its one line naming ``path``."""
    return lambda reason: InputError(f"{path}: {reason}")


def open_log(path: Path) -> BinaryIO:
    """Open a log for a child process to write; :class:`InputError` if it cannot be. A
    link at ``path`` is replaced, never followed: the file it points to is not memgate's
    to truncate (as :func:`write_atomic`'s rename replaces a link)."""
    try:
        if path.is_symlink():
            path.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.fdopen(os.open(path, flags, 0o666), "wb")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: a reader sees the
    old file or the new one, never half of one. Only where a regular file may go: a
    folder, a FIFO or a device at ``path`` (or a link to one) is refused, not replaced."""
    try:
        why = _not_regular(path.stat().st_mode)
    except FileNotFoundError:
        why = None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    if why:
        raise InputError(f"cannot write {path}: {why}")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_leftovers(path: Path) -> None:
    """Remove the temporary files :func:`write_atomic` left beside ``path`` when its
    process was killed before the rename. Only while holding the lock every writer of
    ``path`` takes: then no other writer is half-way."""
    for leftover in leftovers_of(path, ".tmp"):
        with contextlib.suppress(OSError):  # harmless if it stays
            leftover.unlink()


def leftovers_of(path: Path, suffix: str) -> list[Path]:
    """What ``mkstemp``/``mkdtemp`` left beside ``path``, named ``.NAME.RANDOM`` +
    ``suffix`` as this project names its temporary files and folders."""
    # The random part has no dot, so another file's leftovers never match.
    leftover = re.compile(rf"\.{re.escape(path.name)}\.[^.]+{re.escape(suffix)}")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [path.parent / name for name in names if leftover.fullmatch(name)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def locked(root: Path, name: str) -> Iterator[None]:
    """An exclusive lock (``root/.NAME.lock``) for a read-modify-write of one history
    (``NAME.json``, and ``NAME.audit.jsonl`` beside it; ``root`` is the history's folder).

    The lock is ``flock``'s: the system releases it when its holder dies, even by
    SIGKILL, so a killed writer never blocks the next. What such a writer can leave is
    its temporary file; the next writer removes it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f".{name}.lock", "a+b")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot write baselines in {root}: {exc.strerror}") from None
    with lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        for target in (f"{name}.json", f"{name}.audit.jsonl"):
            remove_leftovers(root / target)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
