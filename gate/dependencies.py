"""The service interpreter's distributions: which changed since the compared runs, and
which one a frame's file belongs to.

Most leaks reach a service through a dependency upgrade: a check that fails or flags
names the distributions whose version differs from the compared runs', and a finding in
one of their files names it with both versions. Pure: the versions are what memgate's
agent read in the service's interpreter (``importlib.metadata``), kept in each result's
provenance.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import PurePosixPath

from gate.model import Frame

_SEPARATORS = re.compile(r"[-_.]+")
_INSTALLED = ("site-packages", "dist-packages")


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares them: ``Foo_Bar.baz`` is ``foo-bar-baz``."""
    return _SEPARATORS.sub("-", name).lower()


@dataclasses.dataclass(frozen=True)
class Change:
    """A distribution whose version differs from the compared runs'."""

    name: str
    before: str | None
    """``None``: not installed in the compared run."""
    after: str | None
    """``None``: no longer installed."""

    def text(self) -> str:
        """``somelib 2.4.1 → 2.5.0``."""
        return f"{self.name} {self.before or '(not installed)'} → {self.after or '(removed)'}"


def changes(
    current: Mapping[str, str] | None, compared: Sequence[Mapping[str, str] | None]
) -> tuple[Change, ...]:
    """The distributions whose version differs between ``current`` and the newest of
    ``compared`` that recorded its own (runs recorded before memgate did are skipped),
    by name; none when either side recorded nothing."""
    base = next((c for c in reversed(compared) if c), None)
    if not current or base is None:
        return ()
    now = {normalize(k): v for k, v in current.items()}
    then = {normalize(k): v for k, v in base.items()}
    return tuple(
        Change(name, then.get(name), now.get(name))
        for name in sorted({*now, *then})
        if now.get(name) != then.get(name)
    )


def owner(
    frame: Frame | None,
    packages: Mapping[str, Sequence[str]] | None,
    prefer: Collection[str] = (),
) -> str | None:
    """The distribution (normalized name) whose files hold ``frame``'s, from the
    interpreter's top-level packages and the distributions holding each; of several
    (a namespace package: ``google``, ``opentelemetry``), one in ``prefer`` (those that
    changed) if any; ``None`` for a frame outside site-packages or of no known one."""
    if frame is None:
        return None
    return owner_of_file(frame.file, packages, prefer)


def owner_of_file(
    path: str, packages: Mapping[str, Sequence[str]] | None, prefer: Collection[str] = ()
) -> str | None:
    """The distribution whose files hold ``path`` (a source file or a shared library),
    as :func:`owner`."""
    if not packages:
        return None
    parts = PurePosixPath(path).parts
    at = next((i for i, part in enumerate(parts) if part in _INSTALLED), None)
    if at is None or at + 1 >= len(parts):
        return None
    top = parts[at + 1].split(".")[0]  # a package, or a module: x.py, x.cpython-311-....so
    return _pick(packages.get(top), prefer)


def _pick(found: Sequence[str] | None, prefer: Collection[str]) -> str | None:
    names = [normalize(name) for name in found or ()]
    return next((n for n in names if n in prefer), names[0] if names else None)


def owner_of_path(
    path: str, packages: Mapping[str, Sequence[str]] | None, prefer: Collection[str] = ()
) -> str | None:
    """The distribution of a retention path (``somelib.cache._entries``): by its module's
    top-level package, as :func:`owner`."""
    if not packages:
        return None
    return _pick(packages.get(path.split(".")[0]), prefer)
