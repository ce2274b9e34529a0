"""What keeps the memory alive: the growth between two censuses of the garbage collector's
objects that memgate's agent took inside the service, one after the warm-up and one
after the load.

The allocation sites say where leaking memory was allocated; the census says what holds
it: a container that grows with the requests (named by the path from a module global or
a thread's frame to it), a type of object that grows in number, or objects that nothing
the collector sees refers to (a reference an extension took and never gave back).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence

from gate.observed import Census, Retained, Retention

MIN_GROWTH = 50
"""Items (or objects) a container (or type) must gain to be named."""
MIN_PER_REQUEST = 0.01
"""And per request served between the censuses: one in a hundred requests."""
SHOWN = 5
"""Of each kind, the most grown, per process."""


@dataclasses.dataclass(frozen=True)
class CensusRecord:
    """One census as the agent wrote it (``census.LABEL.PID.json``)."""

    pid: int
    label: str
    t: float
    """Seconds since the epoch."""
    objects: int
    seconds: float
    truncated: bool
    types: Mapping[str, int]
    """Objects by type: at the start, every object the collector tracks; at the end,
    those the roots reach."""
    orphans: Mapping[str, int]
    """At the end, the objects nothing the collector sees refers to, by type."""
    grown: Sequence[tuple[str, int, int, str]] = ()
    """At the end: ``(type, items before, items after, path)`` of each container that
    grew."""
    frozen: int = 0
    """Objects ``gc.freeze()`` had moved out of the collector's sight at the start: the
    start's census did not count them."""


def retention(
    starts: Sequence[CensusRecord],
    ends: Sequence[CensusRecord],
    requests_at: Callable[[float], float],
    *,
    load_start: float,
    main_pid: int,
    problems: Sequence[str] = (),
) -> Retention | None:
    """What grew between each process's start and end census, by at least
    :data:`MIN_GROWTH` and :data:`MIN_PER_REQUEST` per request served between them
    (``requests_at``: requests served by a time), and the censuses' ``problems``;
    ``None`` when no process took both and nothing went wrong (none was asked for)."""
    by_pid = {c.pid: c for c in starts}
    pairs = [(by_pid[end.pid], end) for end in ends if end.pid in by_pid]
    if not pairs and not problems:
        return None
    retained: list[Retained] = []
    main_requests = 0.0
    for start, end in pairs:
        served = requests_at(end.t) - requests_at(start.t)
        if end.pid == main_pid or not main_requests:
            main_requests = served
        if served <= 0:
            continue
        found = [
            Retained("container", path, kind, before, after, (after - before) / served, end.pid)
            for kind, before, after, path in end.grown
            # Frozen at the start, a container was not seen there: its growth is unknown.
            if not (start.frozen and before == 0)
        ]
        if start.frozen:  # and every type's count at the start is short of them
            retained += _enough(found)
            continue
        # The start's census counts every object the collector tracks (reached or not);
        # the end's, after a full collection, those the roots reach, and apart those
        # nothing refers to: growth is measured from the start's whole count, never
        # more than it was.
        was = {
            name: start.types.get(name, 0) + start.orphans.get(name, 0)
            for name in {*start.types, *start.orphans}
        }
        found += _grown("native", was, end.orphans, served, end.pid)
        found += _grown("type", was, end.types, served, end.pid)
        retained += _enough(found)
    order = {"container": 0, "native": 1, "type": 2}
    retained.sort(key=lambda r: (order[r.kind], -(r.after - r.before), r.pid))
    censuses = tuple(
        Census(
            pid=c.pid,
            label=c.label,
            t=round(c.t - load_start, 3),
            objects=c.objects,
            seconds=round(c.seconds, 4),
            truncated=c.truncated,
        )
        for c in sorted([*starts, *ends], key=lambda c: (c.pid != main_pid, c.pid, c.t))
    )
    return Retention(tuple(retained), censuses, round(main_requests, 1), tuple(problems))


def _grown(
    kind: str, before: Mapping[str, int], after: Mapping[str, int], served: float, pid: int
) -> list[Retained]:
    return [
        Retained(
            kind,
            name,
            name,
            before.get(name, 0),
            count,
            (count - before.get(name, 0)) / served,
            pid,
        )
        for name, count in after.items()
        if count > before.get(name, 0)
    ]


def _enough(found: list[Retained]) -> list[Retained]:
    """Those grown enough to name, the most grown :data:`SHOWN` of each kind."""
    kept: list[Retained] = []
    for kind in ("container", "native", "type"):
        theirs = [
            r
            for r in found
            if r.kind == kind
            and r.after - r.before >= MIN_GROWTH
            and r.per_request >= MIN_PER_REQUEST
        ]
        theirs.sort(key=lambda r: r.after - r.before, reverse=True)
        kept += theirs[:SHOWN]
    return kept


ADDING_METHODS = frozenset(
    {"append", "add", "extend", "insert", "appendleft", "extendleft", "update", "setdefault"}
)
"""A container's methods that add to it."""
_PATH = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)((?:\[[^\[\]]*\])*)")


def container_path(path: str) -> tuple[tuple[str, ...], int] | None:
    """A census path from a module global, split: its dotted names (the module's, then
    the attributes from the global to the container) and how many subscripts follow
    them (``app._by_user['alice']``: ``(('app', '_by_user'), 1)``); ``None`` for a path
    from a thread's frame or through what code cannot name (a closure, an lru_cache)."""
    match = _PATH.fullmatch(path)
    if match is None or "." not in match[1]:
        return None
    return tuple(match[1].split(".")), match[2].count("[")


def in_module(path: str, file: str) -> bool:
    """Whether a census ``path`` starts at the module that ``file`` is (a file below the
    service's folder, relative to it, or anywhere: ``shop/views.py`` is ``shop.views``,
    whichever folder holds ``shop``)."""
    parts = file.replace("\\", "/").removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return any(path.startswith(".".join(parts[at:]) + ".") for at in range(len(parts)))


def adding_lines(source: str, names: Sequence[str], subscripts: int = 0) -> list[tuple[int, str]]:
    """The lines of a module's ``source`` that add to the container its globals reach by
    ``names`` (``['_retained']``; ``['_cache', '_entries']`` for an attribute of a global),
    then ``subscripts`` subscripts: a call of one of :data:`ADDING_METHODS` on it, an
    item assigned in it (``NAME[key] = value``) or an augmented assignment (``NAME +=
    ...``); each with the function it is in (``<module>`` at the top level), by line.

    The container is named as the module names it: the global itself (not where a
    function's local or parameter of that name hides it), and, for an attribute of a
    class or of an object, ``self.NAME`` or ``cls.NAME`` in the methods of that class
    (the class the object was made from at the top level, ``_cache = ItemCache()``;
    any class of the module when that cannot be told). Nothing for source that is not
    Python this interpreter parses."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    finder = _Adds(tree, tuple(names), subscripts)
    finder.visit(tree)
    return sorted(finder.found)


@dataclasses.dataclass
class _Scope:
    name: str
    function: bool
    bound: set[str]
    """Names bound in it (its locals), less those it declares global."""
    declared_global: set[str]
    self_name: str | None = None
    """A method's first parameter (``self``, ``cls``) when its class may hold the container."""


class _Adds(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, names: tuple[str, ...], subscripts: int) -> None:
        self.names, self.subscripts = names, subscripts
        self.found: set[tuple[int, str]] = set()
        self.scopes: list[_Scope] = []
        classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
        self.owners: set[str] | None = set()  # classes whose self.NAME it is; None: any
        if len(names) >= 2:
            parent = names[-2]
            made = _made_by(tree, parent) if len(names) == 2 else None
            if parent in classes:
                self.owners = {parent}
            elif made is not None and made in classes:
                self.owners = {made}
            else:
                self.owners = None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for child in (*node.bases, *node.keywords, *node.decorator_list):
            self.visit(child)
        bound, declared = _bound(node.body)
        self.scopes.append(_Scope(node.name, False, bound, declared))
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in (*node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if child is not None:
                self.visit(child)
        arguments = [*node.args.posonlyargs, *node.args.args]
        bound, declared = _bound(node.body)
        bound |= {a.arg for a in (*arguments, *node.args.kwonlyargs)}
        bound |= {a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None}
        owner = self.scopes[-1] if self.scopes and not self.scopes[-1].function else None
        static = any(_named(d) == "staticmethod" for d in node.decorator_list)
        mine = owner is not None and (self.owners is None or owner.name in self.owners)
        self_name = arguments[0].arg if arguments and mine and not static else None
        self.scopes.append(_Scope(node.name, True, bound - declared, declared, self_name))
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        self.scopes.append(_Scope("<lambda>", True, {a.arg for a in arguments}, set()))
        self.visit(node.body)
        self.scopes.pop()

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ADDING_METHODS:
            self._check(func.value, node.lineno)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Subscript):
                self._check(target.value, node.lineno)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if isinstance(node.target, ast.Subscript) and node.value is not None:
            self._check(node.target.value, node.lineno)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        target = node.target
        self._check(target.value if isinstance(target, ast.Subscript) else target, node.lineno)
        self.generic_visit(node)

    def _check(self, node: ast.expr, line: int) -> None:
        for _ in range(self.subscripts):
            if not isinstance(node, ast.Subscript):
                return
            node = node.value
        chain: list[str] = []
        while isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return
        chain.append(node.id)
        chain.reverse()
        function = next((s.name for s in reversed(self.scopes) if s.function), "<module>")
        if tuple(chain) == self.names and self._is_global(node.id):
            self.found.add((line, function))
        elif len(chain) == 2 and len(self.names) >= 2 and chain[1] == self.names[-1]:
            method = next((s for s in reversed(self.scopes) if s.function), None)
            if method is not None and method.self_name == chain[0]:
                self.found.add((line, function))

    def _is_global(self, name: str) -> bool:
        """Whether ``name``, where the visit is, is the module's global of that name."""
        for at, scope in enumerate(reversed(self.scopes)):
            if name in scope.declared_global:
                return True
            # A class's body hides a global only from its own statements.
            if (scope.function or at == 0) and name in scope.bound:
                return False
        return True


def _bound(body: Sequence[ast.stmt]) -> tuple[set[str], set[str]]:
    """The names a scope's ``body`` binds (not inside the functions and classes it
    defines, whose names it binds), and those it declares ``global``."""
    bound: set[str] = set()
    declared: set[str] = set()
    todo: list[ast.AST] = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Global):
            declared.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            bound.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).partition(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        todo.extend(ast.iter_child_nodes(node))
    return bound, declared


def _made_by(tree: ast.Module, name: str) -> str | None:
    """The class whose call a top-level statement binds ``name`` to (``name =
    Class(...)``); ``None`` when no such statement, or another, binds it."""
    made = {
        _named(node.value.func)
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        and isinstance(node.value, ast.Call)
        and any(
            isinstance(t, ast.Name) and t.id == name
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    }
    return made.pop() if len(made) == 1 else None


def _named(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else ""
