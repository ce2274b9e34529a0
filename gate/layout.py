"""The files a run and a check write: their names, defined once.

``OUT`` is a run's output folder (``memgate-out/NAME`` by default). A one-service
scenario keeps everything in ``OUT``; a scenario of several services keeps each
service's files in ``OUT/SERVICE`` and the load's (and a failure's account) in ``OUT``.

Before a run writes ``OUT``, the previous run's ``OUT`` is renamed to ``OUT.previous``
(:func:`keep_previous`), so ``OUT/result.json`` is always the newest run's and the one
before it is kept whole beside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import tempfile
from pathlib import Path

from gate._files import leftovers_of

RESULT = "result.json"
"""What a run measured (``docs/result-schema.md``)."""
REPORT_JSON = "report.json"
"""A check's verdict and findings (``docs/report-schema.md``); ``memgate merge`` reads it."""
REPORT_VERSION = 1
"""Of ``report.json``'s shape (``gate.report.documents.ReportDoc``, which ``gate.merge``
reads part of): bumped once, for the writer and the reader."""
REPORT_HTML = "report.html"
FAILURE = "failure.json"
"""Why a run could not measure, and what it saw until then."""
CAPTURE = "capture.bin"
"""memray's capture of the service's main process (``capture.bin.PID`` for its forks)."""
SERVICE_LOG = "service.log"
LOAD_LOG = "load.log"
LOAD_TIMELINE = "load.jsonl"
LOAD_STOP = "load.stop"
"""Written by memgate to end a soak's load early (a certain leak)."""
LOAD_ENOUGH = "load.enough"
"""Written by memgate once a counted service's heap right after full collections can be
judged: before, the requests bound does not end the load."""

COUNTED = "counted"
"""``[profile] capture = "auto"``: the counted run's folder, inside the run's."""

EARLIER_RUN_FILES = (FAILURE, RESULT, REPORT_JSON, REPORT_HTML)
"""What a run in the folder wrote last time and this run replaces, or must not leave
beside its own failure (``memgate merge`` would read the old report as this run's)."""
RUN_FILES = (RESULT, SERVICE_LOG)
"""Files ``memgate run`` and ``check`` write into a service's folder: such a folder
without a ``report.json`` is a check that did not finish."""


def service_folder(out_dir: Path, service: str | None) -> Path:
    """Where one service's files go: ``out_dir`` itself for a one-service scenario."""
    return out_dir / service if service else out_dir


PREVIOUS_SUFFIX = ".previous"
RUN_MARKS = (RESULT, FAILURE, SERVICE_LOG, LOAD_LOG)
"""Files only a run writes: a folder holding one (or a service's folder holding its
log) is a run's folder, which the next run may move aside."""


def is_set_aside(name: str) -> bool:
    """Whether a folder's ``name`` is a run moved aside (``OUT.previous``), or one being
    dropped (``.OUT.previous.*.old``): no run of its own."""
    return name.endswith(PREVIOUS_SUFFIX) or (
        name.startswith(".") and PREVIOUS_SUFFIX in name and name.endswith(".old")
    )


def previous_folder(out_dir: Path) -> Path:
    """Where the run before the one in ``out_dir`` is kept: ``OUT.previous`` beside it."""
    if out_dir.name in ("", ".."):  # "." or "x/..": named by the folder it is
        out_dir = Path(os.path.abspath(out_dir))
    return out_dir.with_name(out_dir.name + PREVIOUS_SUFFIX)


@dataclasses.dataclass(frozen=True)
class Kept:
    """The previous run's folder, moved aside whole before this run writes its own."""

    previous: Path
    """Where it is now (``OUT.previous``)."""


@dataclasses.dataclass(frozen=True)
class NotKept:
    """A folder left where it was: this run writes over the files of the same names."""

    folder: Path
    reason: str
    """Why it was not moved aside (one clause)."""


def keep_previous(out_dir: Path) -> Kept | NotKept | None:
    """Move the run in ``out_dir`` aside to ``OUT.previous`` (dropping the run kept there
    before), so that this run starts in a folder of its own; ``None`` when there is
    nothing to keep (no folder, or an empty one).

    Only a run's folder (one holding a file of :data:`RUN_MARKS`) is moved or dropped:
    never a symbolic link nor what it leads to, never the current folder or one holding
    it. Each move is one ``rename``, so ``OUT`` is always whole, where it was or at
    ``OUT.previous``. The run dropped is renamed to a hidden ``.OUT.previous.*.old``
    first and removed after (by the next run, if this one is killed before)."""
    why = _not_movable(out_dir)
    if why:
        return NotKept(out_dir, f"{out_dir} {why}")
    previous = previous_folder(out_dir)
    _remove_dropped(previous)
    if why is not None:
        return None  # nothing to keep
    why = _not_movable(previous)
    if why:
        return NotKept(out_dir, f"{previous} {why} (memgate replaces only a run's folder)")
    try:
        dropped = _drop(previous)
    except OSError as exc:
        return NotKept(out_dir, f"{previous} could not be removed ({exc.strerror})")
    try:
        os.rename(out_dir, previous)
    except OSError as exc:
        if dropped is not None:
            with contextlib.suppress(OSError):
                os.rename(dropped, previous)  # as it was
        return NotKept(out_dir, f"{out_dir} could not be renamed ({exc.strerror})")
    if dropped is not None:
        shutil.rmtree(dropped, ignore_errors=True)
    return Kept(previous)


def _not_movable(folder: Path) -> str | None:
    """Why ``folder`` may not be moved or dropped as a run's folder; ``""`` when there is
    nothing there (no folder, or an empty one); ``None`` when it may."""
    try:
        mode = folder.lstat().st_mode
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(mode):
        return "is no folder"
    try:
        names = set(os.listdir(folder))
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not names:
        return ""
    here = os.path.realpath(os.getcwd())
    if os.path.commonpath([here, os.path.realpath(folder)]) == os.path.realpath(folder):
        return "holds the current folder"
    counted = COUNTED in names and _not_movable(folder / COUNTED) is None
    if not (
        names.intersection(RUN_MARKS)
        or counted
        or any(_is_service_folder(folder / n) for n in names)
    ):
        return f"holds no run's files ({', '.join(RUN_MARKS)})"
    return None


def _is_service_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode) and (path / SERVICE_LOG).is_file()
    except OSError:
        return False


def _drop(previous: Path) -> Path | None:
    """Rename ``previous`` (a run's folder, or an empty one) to a hidden folder beside
    it, to be removed: the hidden folder, or ``None`` if there was none."""
    if not previous.exists():
        return None
    hidden = Path(tempfile.mkdtemp(dir=previous.parent, prefix=f".{previous.name}.", suffix=".old"))
    try:
        os.rename(previous, hidden)  # over the empty folder mkdtemp made
    except OSError:
        hidden.rmdir()
        raise
    return hidden


def _remove_dropped(previous: Path) -> None:
    """Remove what a run killed between :func:`_drop` and its ``rmtree`` left."""
    for path in leftovers_of(previous, ".old"):
        if not path.is_symlink() and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
