"""The heap's counters, for memgate's agent when it counts (``"capture": "counters"``):
read inside the service without tracing any allocation. Loaded by path, as the agent is:
the standard library only."""

from __future__ import annotations

import os
from typing import Any


class Heap:
    """The bytes the process's allocators hold for it, read without tracing any
    allocation: pymalloc's allocated blocks (``_PyObject_DebugMallocStats``, what
    ``sys._debugmallocstats()`` prints: 0.3 ms for 47 MB of blocks) and malloc's bytes
    in use (glibc's ``mallinfo2``: small chunks and mmapped ones; pymalloc's arenas are
    mmapped by themselves, so nothing is counted twice). ``read()`` is ``None`` where
    either is missing while in use (no glibc: blocks over 512 bytes would go uncounted).
    Set up once, by :func:`_start` before any thread of the agent reads it."""

    def __init__(self, sampler: str | None = None) -> None:
        self.sampler = sampler
        """The heap sampler's extension (its file), when it samples: its hook on the
        objects' allocator hides pymalloc's statistics, which it reads without it."""
        self._stats: Any = None
        self._libc: Any = None
        self._mallinfo: Any = None
        self._statm: tuple[int, int] | None = None
        """``/proc/self/statm`` opened, and by which process (a fork opens its own)."""

    def setup(self) -> None:
        try:
            import ctypes

            libc = ctypes.CDLL(None)
        except OSError:
            return
        try:  # a missing symbol is an AttributeError
            stats = (  # with the GIL held: PyDLL
                ctypes.PyDLL(self.sampler).memgate_sampler_malloc_stats
                if self.sampler
                else ctypes.pythonapi._PyObject_DebugMallocStats
            )
            stats.argtypes, stats.restype = [ctypes.c_void_p], ctypes.c_int
            libc.open_memstream.restype = ctypes.c_void_p
            libc.open_memstream.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            libc.fclose.argtypes = [ctypes.c_void_p]
            libc.free.argtypes = [ctypes.c_void_p]
            self._stats, self._libc = stats, libc
        except AttributeError:
            pass
        for name, field in (("mallinfo2", ctypes.c_size_t), ("mallinfo", ctypes.c_uint)):
            try:
                function = getattr(libc, name)
            except AttributeError:
                continue
            names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks"
            fields = [(n, field) for n in (*names.split(), "keepcost")]
            function.restype = type("Mallinfo", (ctypes.Structure,), {"_fields_": fields})
            function.argtypes = []
            self._mallinfo = function
            break

    def read(self) -> int | None:
        if self._mallinfo is None or self._stats is None:
            return None
        blocks = self._pymalloc()
        if blocks is None:
            return None
        info = self._mallinfo()
        return blocks + int(info.uordblks) + int(info.hblkhd)

    def _pymalloc(self) -> int | None:
        import ctypes

        buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
        stream = self._libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
        if not stream:
            return None
        try:
            used = self._stats(stream)
        finally:
            self._libc.fclose(stream)
        try:
            text = ctypes.string_at(buffer, size.value) if used else b""
        finally:
            self._libc.free(buffer)
        if not used:  # pymalloc is not in use (PYTHONMALLOC=malloc): malloc counts it all
            return 0
        for line in text.splitlines():
            if line.startswith(b"# bytes in allocated blocks"):
                return int(line.rpartition(b"=")[2].replace(b",", b""))
        return None

    def rss(self) -> int:
        try:
            if self._statm is None or self._statm[1] != os.getpid():
                self._statm = (os.open("/proc/self/statm", os.O_RDONLY), os.getpid())
            fields = os.pread(self._statm[0], 200, 0).split()
        except OSError:
            return 0
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")

    def fields(self) -> str:
        """``"heap": N, "rss": N`` for a JSON line (``""`` if the heap cannot be read)."""
        heap = self.read()
        return "" if heap is None else f', "heap": {heap}, "rss": {self.rss()}'
