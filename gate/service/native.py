"""Native frames' libraries: the only module that reads ELF files (with pyelftools).

memray names a native frame by its function and, with debug information, its source
file, but not by the shared library it is in. The service's loaded libraries are listed
from ``/proc`` at the end of the load (:func:`gate.service.tree.loaded_libraries`); a
frame's library is the one whose symbol tables define its function. The interpreter's
and the C runtime's are looked in first; a name several other libraries define (every
Cython module has ``__Pyx_PyObject_GetAttrStr``) goes to the library of the frame next
to it that has a name of its own, else to none. A frame in an installed package's
library (site-packages, a wheel's bundled ``*.libs``) or in one of the service's own
folder is an extension's: the place a report shows under the Python line that called
it. A system library a standard-library module loaded (libcrypto, libz) is not.

A library without symbols (stripped: no ``.symtab``, no debug information, as Rust-built
wheels are) leaves memray nothing to name its inner functions by: they come as
``<unknown>``, and memray's readers give neither their address nor their library. Such a
frame is given its library by elimination: the one extension library the service had
loaded without symbols, when the frame was called from the interpreter (or from an
exported function of that library) and the interpreter has its own symbols; none when
several could hold it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Sequence

import numpy as np

from gate.model import Frame, NativeFrame, named_function

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
_INTERPRETER = re.compile(r"^(?:python\d[\d.]*[a-z]*|libpython\d[\d.]*[a-z]*\.so.*)$")
"""The interpreter's executable and shared library."""
_RUNTIME_FOLDERS = ("lib-dynload", "memray", "memray.libs")
"""The standard library's extension modules, and memray's own module and libraries."""
_INSTALLED = ("site-packages", "dist-packages")

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


def is_runtime(path: str) -> bool:
    """Whether ``path`` is the interpreter's, the C runtime's or memray's."""
    folder, _, name = path.rpartition("/")
    return bool(_RUNTIME.match(name)) or any(part in _RUNTIME_FOLDERS for part in folder.split("/"))


def is_extension(path: str, own: Sequence[str] = ()) -> bool:
    """Whether ``path`` is an extension's: an installed package's (site-packages, or the
    ``*.libs`` folder of a wheel's bundled libraries) or below one of the ``own`` folders
    (the service's), and not the runtime's."""
    if not path or is_runtime(path):
        return False
    parts = path.split("/")
    installed = any(part in _INSTALLED or part.endswith(".libs") for part in parts[:-1])
    return installed or any(path.startswith(folder.rstrip("/") + "/") for folder in own)


class Libraries:
    """The libraries a service had loaded, asked which one defines a function."""

    def __init__(self, paths: Sequence[str], own: Sequence[str] = ()) -> None:
        self._runtime = [path for path in paths if is_runtime(path)]
        self._others = [path for path in paths if not is_runtime(path)]
        self._own = tuple(own)
        self._tables: dict[str, list[_SymbolTable]] = {}
        self._owners: dict[str, tuple[str, ...]] = {}
        self._stripped: tuple[str, ...] | None = None

    def owners(self, function: str) -> tuple[str, ...]:
        """The libraries that define ``function``: the runtime's one if it does (a name
        in both is the interpreter's, so that no interpreter frame passes for an
        extension's), else every other that does; none for a function memray could
        not name."""
        if not named_function(function):
            return ()
        found = self._owners.get(function)
        if found is None:
            name = function.encode() + b"\0"
            runtime = next((p for p in self._runtime if self._defines(p, name)), None)
            if runtime is not None:
                found = (runtime,)
            else:
                found = tuple(p for p in self._others if self._defines(p, name))
            self._owners[function] = found
        return found

    def describe(self, frames: Sequence[Frame]) -> tuple[NativeFrame, ...]:
        """memray's native frames (innermost first) with their libraries: a function
        several libraries define is given the library of the nearest frame, outward
        first, whose own library is one of them and the only one defining its name."""
        candidates = [self.owners(frame.function) for frame in frames]
        libraries = [_resolve(i, candidates) for i in range(len(frames))]
        for i, frame in enumerate(frames):
            if not named_function(frame.function):
                libraries[i] = self._unnamed(i, frames, libraries)
        return tuple(
            NativeFrame(
                function=frame.function,
                file=frame.file,
                line=frame.line,
                library=library,
                extension=is_extension(library, self._own),
            )
            for frame, library in zip(frames, libraries, strict=True)
        )

    def stripped(self) -> tuple[str, ...]:
        """The extension modules loaded without symbols (neither a full symbol table nor
        debug information, so memray names none of their inner functions): what the
        interpreter calls, so not a wheel's bundled libraries (``numpy.libs/...``)."""
        if self._stripped is None:
            self._stripped = tuple(
                path
                for path in self._others
                if is_extension(path, self._own)
                and path.endswith(".so")
                and not any(part.endswith(".libs") for part in path.split("/")[:-1])
                and _no_symbols(path)
            )
        return self._stripped

    def _unnamed(self, i: int, frames: Sequence[Frame], libraries: Sequence[str]) -> str:
        """The library of frame ``i``, whose function memray could not name: the library
        of the nearest named frame outward if that is a stripped extension's (its
        exported function called in); else, when that frame is the interpreter's (or
        there is none), the one stripped extension library loaded, if only one is and
        the interpreter has its symbols (else its own unnamed frames would pass for it)."""
        caller = next(
            (j for j in range(i + 1, len(frames)) if named_function(frames[j].function)), None
        )
        stripped = self.stripped()
        if caller is not None:
            library = libraries[caller]
            if library in stripped:
                return library
            if not library or not is_runtime(library):
                return ""
        if len(stripped) != 1 or any(
            _INTERPRETER.match(path.rpartition("/")[2]) and _no_symbols(path)
            for path in self._runtime
        ):
            return ""
        return stripped[0]

    def _defines(self, path: str, name: bytes) -> bool:
        tables = self._tables.get(path)
        if tables is None:
            tables = self._tables[path] = _symbol_tables(path)
        return any(table.defines(name) for table in tables)


def _resolve(i: int, candidates: Sequence[tuple[str, ...]]) -> str:
    """Frame ``i``'s library, from the libraries defining each frame's function."""
    mine = candidates[i]
    if len(mine) <= 1:
        return mine[0] if mine else ""
    for j in itertools.chain(range(i + 1, len(candidates)), range(i - 1, -1, -1)):
        theirs: tuple[str, ...] = candidates[j]
        if len(theirs) == 1 and theirs[0] in mine:
            return theirs[0]
    return ""


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


def _no_symbols(path: str) -> bool:
    """Whether the ELF file at ``path`` has neither a full symbol table (``.symtab``,
    or the compressed one in ``.gnu_debugdata``) nor debug information; ``False`` for a
    file that is not one or cannot be read (nothing is known of it)."""
    from elftools.elf.elffile import ELFFile

    with contextlib.suppress(Exception), open(path, "rb") as file:
        if file.read(4) != b"\x7fELF":
            return False
        file.seek(0)
        return not any(
            section["sh_type"] == "SHT_SYMTAB" or section.name in (".debug_info", ".gnu_debugdata")
            for section in ELFFile(file).iter_sections()
        )
    return False


def _symbol_tables(path: str) -> list[_SymbolTable]:
    """The symbol tables of the ELF file at ``path``; none when it is not one, cannot be
    read (a library deleted since) or is damaged: naming a library is a courtesy, and
    a file that will not tell must not end the run."""
    from elftools.elf.elffile import ELFFile

    tables = []
    with contextlib.suppress(Exception):
        if not os.path.isfile(path):
            return []
        size = os.path.getsize(path)
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
                strings_section = elf.get_section(section["sh_link"])
                if any(s["sh_offset"] + s["sh_size"] > size for s in (section, strings_section)):
                    continue  # a damaged header: reading it would ask for what is not there
                data = section.data()
                symbols = np.frombuffer(data, dtype=layout, count=len(data) // layout.itemsize)
                kinds = symbols["info"] & 0xF
                defined = np.isin(kinds, _FUNCTION_TYPES) & (symbols["shndx"] != 0)
                strings = strings_section.data()
                tables.append(_SymbolTable(strings, symbols["name"][defined].astype(np.int64)))
    return tables
