"""What memgate asks of the service's interpreter before it runs anything there: its
version, memray's (importable, and which), the folders whose code is not the service's,
and its distributions. Run by path in that interpreter (``python describe_python.py``
prints one JSON line), as memgate's agent is: the standard library only.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def library_roots() -> list[str]:
    """Folders of this interpreter whose code is not the service's: the standard library
    and site-packages, of the environment and of the Python it was made from."""
    import sysconfig

    names = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {sysconfig.get_path(name) for name in names}
    roots |= {
        sysconfig.get_path(name, vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
        for name in names
    }
    return sorted(root for root in roots if root)


def describe() -> dict[str, Any]:
    """This interpreter: its version, memray's (``None`` when it cannot be imported,
    with the reason) and its library folders."""
    import importlib
    import importlib.metadata
    import platform

    try:
        import memray  # noqa: F401 - importable, not only installed

        found, problem = importlib.metadata.version("memray"), None
    except Exception as exc:
        found, problem = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    try:  # capture = "sampled"'s extension
        importlib.import_module("memgate_sampler")
        sampler = importlib.metadata.version("memgate-sampler")
    except Exception:
        sampler = None
    return {
        "executable": sys.executable,
        "python": platform.python_version(),
        "memray": found,
        "problem": problem,
        "sampler": sampler,
        "library_roots": library_roots(),
        **installed(),
    }


def installed() -> dict[str, Any]:
    """The interpreter's distributions and their versions, and which distributions each
    top-level package or module belongs to: a frame in site-packages, or a retention
    path, is then named by its distribution."""
    import importlib.metadata
    import re

    versions: dict[str, str] = {}
    packages: dict[str, list[str]] = {}
    seen: set[str] = set()
    try:
        found = list(importlib.metadata.distributions())
    except Exception:
        found = []
    for dist in found:
        try:  # one broken distribution's metadata costs only its own line
            name = dist.metadata["Name"]
            key = re.sub(r"[-_.]+", "-", name).lower() if name else ""
            if not key or key in seen:
                continue  # the first on the path is the one imported
            seen.add(key)
            versions[name] = dist.version
            top = dist.read_text("top_level.txt") or ""
            for module in top.split() or _top_level(dist):
                packages.setdefault(module, []).append(name)
        except Exception:
            continue
    return {"distributions": versions, "packages": packages}


def _top_level(dist: Any) -> list[str]:
    """A distribution's top-level names from its RECORD (no ``top_level.txt``)."""
    found = []
    for file in dist.files or ():
        first = str(file).split("/")[0]
        if first.endswith((".dist-info", ".egg-info", ".pth")) or first == "..":
            continue
        found.append(first[:-3] if first.endswith(".py") else first.split(".")[0])
    return sorted(set(found))


if __name__ == "__main__":
    print(json.dumps(describe()))
