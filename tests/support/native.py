"""The leaky C extension of ``tests/fixtures/native_service``, built for this Python."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

NATIVE_SERVICE = Path(__file__).resolve().parents[1] / "fixtures" / "native_service"
"""A standard-library HTTP service calling ``leaky.leak`` (``leaky.c``) once a request."""


def build_leaky(folder: Path, *, debug: bool = True, stripped: bool = False) -> Path:
    """Copy the native service into ``folder`` and build ``leaky`` beside it with the C
    compiler, for the interpreter running the tests (the one the service runs in);
    the shared library's path. ``debug``: with debug information (source lines);
    ``stripped``: then stripped of every symbol it can lose (``strip --strip-all``,
    as Rust-built wheels are), its exported ones kept in ``.dynsym``."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler is needed to build the test extension (gcc, as cc)"
    shutil.copytree(NATIVE_SERVICE, folder, dirs_exist_ok=True)
    library = folder / f"leaky{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    flags = ["-shared", "-fPIC", "-O1", *(["-g"] if debug else []), f"-I{include}"]
    subprocess.run(
        [compiler, *flags, "leaky.c", "-o", library.name],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    if stripped:
        subprocess.run(["strip", "--strip-all", library.name], cwd=folder, check=True)
    return library
