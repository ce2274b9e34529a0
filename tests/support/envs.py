"""Service environments of their own: a virtual environment with one dependency,
``somelib``, installed in the version asked for (a real distribution: its package and
its ``.dist-info``), memray and the rest of the tests' own packages reached through a
``.pth`` file."""

from __future__ import annotations

import sysconfig
import venv
from pathlib import Path

DEPENDENCY_SERVICE = Path(__file__).resolve().parents[1] / "fixtures" / "dependency_service"
"""A standard-library HTTP service passing each request's payload to ``somelib``."""

_SOMELIB = '''\
"""somelib {version}: remembers what it is given{how}."""

_seen = []


def remember(item):
    {body}
    return len(item)
'''


def service_env(folder: Path, version: str, *, keeps: bool) -> Path:
    """A virtual environment in ``folder`` with ``somelib`` ``version`` (``keeps``: every
    item it is given stays alive, in a module-level list); its ``python``."""
    venv.create(folder, with_pip=False, symlinks=True)
    site = Path(sysconfig.get_paths(vars={"base": str(folder), "platbase": str(folder)})["purelib"])
    # memray and what it imports come from the tests' environment (all of its packages:
    # both environments share them); somelib is each environment's own.
    (site / "tests-memray.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    package = site / "somelib"
    package.mkdir()
    body = "_seen.append(item)" if keeps else "pass"
    how = ", and keeps it" if keeps else ", and forgets it"
    (package / "__init__.py").write_text(_SOMELIB.format(version=version, how=how, body=body))
    info = site / f"somelib-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: somelib\nVersion: {version}\n")
    (info / "top_level.txt").write_text("somelib\n")
    (info / "RECORD").write_text(
        f"somelib/__init__.py,,\nsomelib-{version}.dist-info/METADATA,,\n"
        f"somelib-{version}.dist-info/RECORD,,\n"
    )
    return folder / "bin" / "python"
