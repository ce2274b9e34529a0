"""The census of the garbage collector's objects, for memgate's agent (``census.LABEL``):
loaded by path, as the agent is, when memgate asks for censuses, and only then. The
standard library only.

- :func:`light_census`, at the steady start while the load runs: every tracked object
  counted by type, and the containers with at least ``CENSUS_MIN_ITEMS`` items;
- :func:`census`, once the load has ended and after a full collection: the objects the
  roots reach (modules' globals, other threads' frames) by type, those only native code
  refers to, and the containers grown since the start's, each with the path from a root.
"""

from __future__ import annotations

import collections
import functools
import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from types import CellType, FrameType, FunctionType
from typing import Any

CENSUS_MIN_ITEMS = 16
"""Containers shorter than this at the start are not recorded (one that grew from
fewer counts from 0)."""
CENSUS_MIN_GROWTH = 32
CENSUS_GROWN = 10
"""At the end, the containers that grew by at least this many items, the most grown
first, up to this many, get the path to them."""
CENSUS_MAX_OBJECTS = 2_000_000
CENSUS_CHUNK = 1000


_CONTAINERS = (list, dict, set, collections.deque)
_SIZED = (*_CONTAINERS, functools._lru_cache_wrapper)


def _type_name(kind: type) -> str:
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module == "builtins" else f"{module}.{name}"


def _length(obj: object) -> int | None:
    """Items a container holds: a list's, dict's, set's or deque's length (as the
    built-in type counts them: a subclass's own ``__len__``, the service's code, is not
    run), an ``lru_cache`` wrapper's entries; ``None`` for anything else."""
    for kind in _CONTAINERS:
        if isinstance(obj, kind):
            return int(kind.__len__(obj))  # type: ignore[arg-type]
    if isinstance(obj, functools._lru_cache_wrapper):
        return int(functools._lru_cache_wrapper.cache_info(obj).currsize)
    return None


def light_census() -> dict[str, Any]:
    """The census at the steady start, while the load runs: every object the collector
    tracks counted by type, and the containers among them with at least
    ``CENSUS_MIN_ITEMS`` items. It walks no reference and looks at no frame: it must
    be short (the service waits for it), allocate little (its objects are in the
    service's heap while it runs) and leave nothing behind (Python keeps an object made
    for a running frame, and its locals, while the frame runs)."""
    began, clock = time.time(), time.perf_counter()
    everything = gc.get_objects()
    counts = _by_name(collections.Counter(map(type, everything)))
    containers = []
    for obj in everything:
        if issubclass(type(obj), _SIZED):  # type(): a proxy's __class__ is not asked
            length = _length(obj) or 0
            if length >= CENSUS_MIN_ITEMS:
                containers.append([id(obj), _type_name(type(obj)), length])
    # A dict of plain values (str -> str, say) is not tracked by the collector: found
    # among the tracked objects' referents, a chunk at a time.
    seen: set[int] = set()
    for at in range(0, len(everything), CENSUS_CHUNK):
        for ref in gc.get_referents(*everything[at : at + CENSUS_CHUNK]):
            if type(ref) is dict and not gc.is_tracked(ref) and id(ref) not in seen:
                seen.add(id(ref))
                if len(ref) >= CENSUS_MIN_ITEMS:
                    containers.append([id(ref), "dict", len(ref)])
    objects = len(everything)
    del everything, seen
    return {
        "pid": os.getpid(),
        "t": began,
        "objects": objects,
        "truncated": False,
        "frozen": gc.get_freeze_count() if hasattr(gc, "get_freeze_count") else 0,
        "types": counts,
        "orphans": {},
        "containers": containers,
        "seconds": round(time.perf_counter() - clock, 6),
    }


def census(
    start: dict[str, Any] | None = None, collect: Callable[[], object] = gc.collect
) -> dict[str, Any]:
    """The garbage collector's objects now: those reachable from the roots (every
    module's globals, every other thread's frames) by type, the containers among them
    with at least ``CENSUS_MIN_ITEMS`` items, the objects that nothing the collector
    sees refers to (references native code holds) by type; with ``start`` (an earlier
    census), the containers grown since it, each with the path from a root to it.

    It is taken once the load has ended (its pause and its objects are in no point of
    the curve), after a full collection (``collect``, the agent's own): what the roots do
    not reach is then what only native code holds, not garbage waiting for the
    collector."""
    began, clock = time.time(), time.perf_counter()
    collect()  # the agent's: its collection, not the service's
    parents: dict[int, object] = {}  # id of each object reached -> what reached it first
    names: dict[int, str] = {}  # id of each root -> how it is named
    queue: collections.deque[object] = collections.deque(_roots(parents, names))
    modules = {id(vars(m)) for m in list(sys.modules.values()) if hasattr(m, "__dict__")}
    by_type: collections.Counter[type] = collections.Counter()
    containers: dict[int, object] = {}
    lengths: dict[int, int] = {}
    visited = 0
    # The loop allocates as little as it can: the service's tracker records every
    # allocation, and each one costs the pause.
    is_tracked, referents, popleft, append = (
        gc.is_tracked,
        gc.get_referents,
        queue.popleft,
        queue.append,
    )
    while queue and visited < CENSUS_MAX_OBJECTS:
        obj = popleft()
        visited += 1
        by_type[type(obj)] += 1
        if issubclass(type(obj), _SIZED):
            length = _length(obj) or 0
            if length >= CENSUS_MIN_ITEMS:
                containers[id(obj)], lengths[id(obj)] = obj, length
        for ref in referents(obj):
            if is_tracked(ref):
                if (key := id(ref)) not in parents:
                    parents[key] = obj
                    append(ref)
            elif type(ref) is dict and len(ref) >= CENSUS_MIN_ITEMS and id(ref) not in parents:
                parents[id(ref)] = obj  # a dict of plain values: measured, nothing to walk
                containers[id(ref)], lengths[id(ref)] = ref, len(ref)
    truncated = bool(queue)
    counts = _by_name(by_type)
    by_type.clear()
    queue.clear()
    # What the roots do not reach: garbage awaiting the collector, and objects that
    # only native code refers to. Those that nothing the collector sees refers to are
    # the latter: a reference an extension took and never gave back. (This census's
    # own containers are held by its running frame, which the collector does not see.)
    everything = gc.get_objects()
    mine = {
        id(x) for x in (everything, parents, names, queue, by_type, containers, lengths, modules)
    }
    referred = {id(r) for r in gc.get_referents(start)} if start is not None else set()
    mine.add(id(start))
    unreached = [o for o in everything if id(o) not in parents and id(o) not in mine]
    del everything
    if truncated:  # what the walk did not expand would pass for what native code holds
        unreached = []
    referred.update(id(r) for o in unreached for r in gc.get_referents(o))
    orphans = _by_name(collections.Counter(type(o) for o in unreached if id(o) not in referred))
    del unreached, referred
    taken: dict[str, Any] = {
        "pid": os.getpid(),
        "t": began,
        "objects": visited,
        "truncated": truncated,
        "types": counts,
        "orphans": orphans,
    }
    if start is None:
        taken["containers"] = [
            [key, _type_name(type(obj)), lengths[key]] for key, obj in containers.items()
        ]
    else:
        before = {int(k): (str(kind), int(n)) for k, kind, n in start.get("containers", ())}
        grown = []
        for key, obj in containers.items():
            kind = _type_name(type(obj))
            was_kind, was = before.get(key, (kind, 0))
            was = was if was_kind == kind else 0
            # An lru_cache's own dict is told as the wrapper that holds it; a frame's
            # locals are made afresh for each census (at another address): not grown.
            held_by_cache = isinstance(parents.get(key), functools._lru_cache_wrapper)
            a_frame = key in names and parents.get(key) is None and key not in modules
            if lengths[key] - was >= CENSUS_MIN_GROWTH and not (held_by_cache or a_frame):
                grown.append((lengths[key] - was, key, kind, was))
        grown.sort(reverse=True)
        taken["grown"] = [
            {
                "type": kind,
                "before": was,
                "after": was + growth,
                "path": _path(containers[key], parents, names),
            }
            for growth, key, kind, was in grown[:CENSUS_GROWN]
        ]
    parents.clear()
    containers.clear()
    taken["seconds"] = round(time.perf_counter() - clock, 6)
    return taken


def _by_name(counts: collections.Counter[type]) -> dict[str, int]:
    named: dict[str, int] = {}
    for kind, count in counts.items():
        name = _type_name(kind)
        named[name] = named.get(name, 0) + count
    return named


def _roots(parents: dict[int, object], names: dict[int, str]) -> list[object]:
    """The census's roots: every module's globals, and the locals of every frame of the
    other threads (a running frame's locals are not the collector's to follow)."""
    roots: list[object] = []

    def add(namespace: object, name: str) -> None:
        if id(namespace) not in parents:
            parents[id(namespace)] = None
            names[id(namespace)] = name
            roots.append(namespace)

    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict):
            # The service run as ``-m package.module`` is ``__main__``: named as imported.
            spec = namespace.get("__spec__") if name == "__main__" else None
            add(namespace, getattr(spec, "name", None) or name)
    threads = {t.ident: t.name for t in threading.enumerate()}
    for ident, top in sys._current_frames().items():
        frame: FrameType | None = top if ident != threading.get_ident() else None
        while frame is not None:
            code = frame.f_code
            where = f"{code.co_name} ({code.co_filename}:{frame.f_lineno})"
            namespace = frame.f_locals
            if not isinstance(namespace, dict):  # 3.13: a proxy, which refers to nothing
                namespace = dict(namespace)
            add(namespace, f"thread {threads.get(ident, ident)!r}: {where}")
            frame = frame.f_back
    return roots


def _path(obj: object, parents: dict[int, object], names: dict[int, str]) -> str:
    """How a root reaches ``obj``: ``module.name.attribute[key]...``."""
    chain = [obj]
    while (parent := parents.get(id(chain[-1]))) is not None and len(chain) < 1000:
        chain.append(parent)
    chain.reverse()
    text = names.get(id(chain[0]), "?")
    for at in range(1, len(chain)):
        outer = chain[at - 2] if at >= 2 else None
        try:
            text += _step(chain[at - 1], chain[at], outer)
        except Exception:  # changed by another thread meanwhile, or code that raised
            text += " -> ?"
    return text


def _key(key: object) -> str:
    """A dict's key as code would write it, for plain values only (another object's
    ``__repr__`` is the service's code): else its type."""
    if type(key) in (str, int, float, bytes, bool) or key is None:
        return repr(key)[:40]
    return f"<{_type_name(type(key))}>"


def _step(parent: object, child: object, outer: object) -> str:
    """How ``parent`` holds ``child`` (``outer`` holds ``parent``), as code would say it."""
    if isinstance(parent, type) and type(child) is dict:
        return ""  # the class's own namespace: its attributes follow
    if isinstance(parent, dict):
        for key, value in list(dict.items(parent)):
            if value is child:
                if (
                    outer is None
                    or getattr(outer, "__dict__", None) is parent
                    or (isinstance(outer, type) and outer.__dict__.get(key) is child)
                ):
                    return f".{key}" if isinstance(key, str) else f"[{_key(key)}]"
                return f"[{_key(key)}]"
        return "{key}"
    if isinstance(parent, (list, tuple, collections.deque)):
        for index, value in enumerate(list(parent)):
            if value is child:
                if isinstance(outer, FunctionType) and parent is outer.__closure__:
                    return f".{outer.__code__.co_freevars[index]}"  # the closure's name
                return f"[{index}]"
        return "[?]"
    if isinstance(parent, CellType):
        return " (closure)"
    if isinstance(parent, FunctionType) and child is parent.__closure__:
        return ""
    if getattr(parent, "__dict__", None) is child:
        return ""
    try:
        attributes = vars(parent)
    except TypeError:
        attributes = {}
    for name in (*attributes, *getattr(type(parent), "__slots__", ())):
        try:
            if getattr(parent, name) is child:
                return f".{name}"
        except Exception:  # a property that raises
            continue
    if isinstance(parent, functools._lru_cache_wrapper):
        return " (lru_cache)"
    return f" -> {_type_name(type(child))}"
