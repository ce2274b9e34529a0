"""Native frames' libraries: the only module that reads ELF files (with pyelftools).

memray names a native frame by its function and, with debug information, its source
file, but not by the shared library it is in. The service's loaded libraries are listed
from ``/proc`` (psutil) at the end of the load; a frame's library is the one whose symbol
tables define its function, the interpreter's and the C runtime's looked in first. A
frame in any other library (an extension's, or a library one loaded) is an extension's:
the place a report shows under the Python line that called it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np
import psutil

from gate.model import Frame, NativeFrame

_RUNTIME = re.compile(
    r"""^(?:
        python\d[\d.]*[a-z]*            # the interpreter's executable
      | libpython\d[\d.]*[a-z]*\.so.*   # its shared library
      | ld-linux.*\.so.* | ld-musl.* | libc\.so.* | libc\.musl.* | libm\.so.*
      | libpthread\.so.* | libdl\.so.* | librt\.so.* | libutil\.so.*
      | libstdc\+\+\.so.* | libgcc_s\.so.*
    )$""",
    re.VERBOSE,
)
_RUNTIME_FOLDERS = ("lib-dynload", "memray", "memray.libs")
"""The standard library's extension modules, and memray's own module and libraries."""

_FUNCTION_TYPES = (2, 10)
"""``STT_FUNC`` and ``STT_GNU_IFUNC``."""
_SYMBOL_FIELDS = {
    64: (
        ("name", "u4"),
        ("info", "u1"),
        ("other", "u1"),
        ("shndx", "u2"),
        ("value", "u8"),
        ("size", "u8"),
    ),
    32: (
        ("name", "u4"),
        ("value", "u4"),
        ("size", "u4"),
        ("info", "u1"),
        ("other", "u1"),
        ("shndx", "u2"),
    ),
}
"""``Elf64_Sym`` and ``Elf32_Sym``'s fields, by class (the byte order is the file's)."""


def loaded_libraries(pids: Iterable[int]) -> tuple[str, ...]:
    """The files mapped into the processes ``pids`` (those still running), each once, in
    the order first seen: read while the service runs, looked up after it stopped."""
    seen: dict[str, None] = {}
    for pid in pids:
        try:
            maps = psutil.Process(pid).memory_maps(grouped=True)
        except (psutil.Error, OSError):
            continue
        for mapping in maps:
            if mapping.path.startswith("/"):
                seen.setdefault(mapping.path)
    return tuple(seen)


def is_runtime(path: str) -> bool:
    """Whether ``path`` is the interpreter's, the C runtime's or memray's."""
    folder, _, name = path.rpartition("/")
    return bool(_RUNTIME.match(name)) or any(part in _RUNTIME_FOLDERS for part in folder.split("/"))


class Libraries:
    """The libraries a service had loaded, asked which one defines a function."""

    def __init__(self, paths: Sequence[str]) -> None:
        # The runtime's first: a function named in both (a static helper in an extension
        # and in the interpreter) is the interpreter's, so no interpreter frame passes
        # for an extension's.
        self._paths = sorted(paths, key=lambda path: not is_runtime(path))
        self._tables: dict[str, list[_SymbolTable]] = {}
        self._owners: dict[str, str] = {}

    def owner(self, function: str) -> str:
        """The library that defines ``function``, or ``""``."""
        if not function or function.startswith("<"):
            return ""
        found = self._owners.get(function)
        if found is None:
            name = function.encode() + b"\0"
            found = next(
                (path for path in self._paths if any(t.defines(name) for t in self._read(path))),
                "",
            )
            self._owners[function] = found
        return found

    def describe(self, frames: Sequence[Frame]) -> tuple[NativeFrame, ...]:
        """memray's native frames with their libraries."""
        out = []
        for frame in frames:
            library = self.owner(frame.function)
            out.append(
                NativeFrame(
                    function=frame.function,
                    file=frame.file,
                    line=frame.line,
                    library=library,
                    extension=bool(library) and not is_runtime(library),
                )
            )
        return tuple(out)

    def _read(self, path: str) -> list[_SymbolTable]:
        tables = self._tables.get(path)
        if tables is None:
            tables = self._tables[path] = _symbol_tables(path)
        return tables


class _SymbolTable:
    """One ``.symtab`` or ``.dynsym``: its string table and where its defined functions'
    names start in it."""

    def __init__(self, strings: bytes, starts: np.ndarray) -> None:
        self._strings = strings
        self._starts = np.sort(starts)

    def defines(self, name: bytes) -> bool:
        """Whether a defined function is named ``name`` (NUL-terminated): every place
        the name ends a string is tried, for string tables share their names' tails."""
        at = self._strings.find(name)
        while at >= 0:
            i = int(np.searchsorted(self._starts, at))
            if i < len(self._starts) and self._starts[i] == at:
                return True
            at = self._strings.find(name, at + 1)
        return False


def _symbol_tables(path: str) -> list[_SymbolTable]:
    """The symbol tables of the ELF file at ``path``; none when it is not one or cannot
    be read (a library deleted since, say)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    tables = []
    with contextlib.suppress(OSError, ELFError, ValueError, KeyError):
        if not os.path.isfile(path):
            return []
        with open(path, "rb") as file:
            if file.read(4) != b"\x7fELF":
                return []
            file.seek(0)
            elf = ELFFile(file)
            fields = _SYMBOL_FIELDS.get(elf.elfclass)
            if fields is None:
                return []
            order = "<" if elf.little_endian else ">"
            layout = np.dtype([(name, order + kind) for name, kind in fields])
            for section in elf.iter_sections():
                if section["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
                    continue
                data = section.data()
                symbols = np.frombuffer(data, dtype=layout, count=len(data) // layout.itemsize)
                kinds = symbols["info"] & 0xF
                defined = np.isin(kinds, _FUNCTION_TYPES) & (symbols["shndx"] != 0)
                strings = elf.get_section(section["sh_link"]).data()
                tables.append(_SymbolTable(strings, symbols["name"][defined].astype(np.int64)))
    return tables
