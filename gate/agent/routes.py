"""The routes the service's web framework knows, for ``memgate init``'s probe: listed by
memgate's agent inside the service (Flask's ``url_map``, Django's URL resolver,
Starlette's and FastAPI's routes; only a framework already imported is looked at).
Loaded by path, as the agent is: the standard library only."""

from __future__ import annotations

import gc
import sys
from typing import Any

ROUTES_MOST = 500
"""Routes listed at most: init keeps 20 tasks, and an app may generate thousands."""
ROUTES_DEPTH = 20
"""How deep nested mounts and includes are walked: a cycle ends there."""
FASTAPI_OWN = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def list_routes() -> dict[str, Any]:
    """``{"framework": NAME, "routes": [{"path": "/x", "params": false}, ...]}`` of the
    first framework loaded in this process that knows routes; ``{"error": ...}`` if none.
    Only frameworks already imported are looked at: importing one would run the
    service's code, or load what it never uses."""
    for name, lister in (
        ("flask", _flask_routes),
        ("django", _django_routes),
        ("starlette", _starlette_routes),
    ):
        routes = lister()
        if routes:
            unique = {path: params for path, params in routes}
            listed = [{"path": p, "params": unique[p]} for p in sorted(unique)[:ROUTES_MOST]]
            return {"framework": name, "routes": listed}
    return {"error": "no Flask, Django or Starlette routes in this process"}


def _instances(kind: type) -> list[Any]:
    """The objects of class ``kind`` (or a subclass) the garbage collector tracks."""
    return [obj for obj in gc.get_objects() if isinstance(obj, kind)]


def _flask_routes() -> list[tuple[str, bool]]:
    """The GET rules of every Flask app: ``(rule, has arguments)``, static files left out."""
    flask = sys.modules.get("flask")
    app_class = getattr(flask, "Flask", None)
    if not isinstance(app_class, type):
        return []
    routes = []
    for app in _instances(app_class):
        for rule in app.url_map.iter_rules():
            endpoint = str(rule.endpoint)
            if "GET" not in (rule.methods or ()) or endpoint.split(".")[-1] == "static":
                continue
            routes.append((str(rule.rule), bool(rule.arguments)))
    return routes


def _django_routes() -> list[tuple[str, bool]]:
    """The root URLconf's patterns, includes walked; ``admin/`` left out. Only once
    Django is imported and its settings configured: ``django.urls`` is then imported."""
    conf = sys.modules.get("django.conf")
    settings = getattr(conf, "settings", None)
    if settings is None or not settings.configured:
        return []
    import importlib

    urls = importlib.import_module("django.urls")
    routes: list[tuple[str, bool]] = []
    _walk_django(urls.get_resolver().url_patterns, "/", routes, 0)
    return routes


def _django_pattern(pattern: object) -> str:
    """A pattern as a path: a route as written, a regex without its ``^`` and ``$``."""
    text = str(pattern)
    if type(pattern).__name__ == "RegexPattern":
        text = text[1:] if text.startswith("^") else text  # 3.8: no removeprefix
        for end in ("$", "\\Z"):
            text = text[: -len(end)] if text.endswith(end) else text
    return text


def _walk_django(patterns: Any, prefix: str, routes: list[tuple[str, bool]], depth: int) -> None:
    if depth > ROUTES_DEPTH:
        return
    for entry in patterns:
        if len(routes) >= ROUTES_MOST:
            return
        path = prefix + _django_pattern(entry.pattern)
        if path.startswith("/admin/"):
            continue
        if hasattr(entry, "url_patterns"):  # a URLResolver: an include()
            _walk_django(entry.url_patterns, path, routes, depth + 1)
        else:
            # <...> and (...) capture arguments; any other regex syntax is no plain path
            params = any(mark in path for mark in "<([\\*+?|")
            routes.append((path, params))


def _starlette_routes() -> list[tuple[str, bool]]:
    """The GET routes of every Starlette (or FastAPI) app, mounts walked; FastAPI's own
    pages left out. An app mounted in another is listed under its mount only."""
    applications = sys.modules.get("starlette.applications")
    routing = sys.modules.get("starlette.routing")
    app_class = getattr(applications, "Starlette", None)
    if not isinstance(app_class, type) or routing is None:
        return []
    listed: dict[int, list[tuple[str, bool]]] = {}
    mounted: set[int] = set()
    for app in _instances(app_class):
        routes: list[tuple[str, bool]] = []
        _walk_starlette(routing, app.routes, "", routes, mounted, 0)
        listed[id(app)] = routes
    return [route for key, routes in listed.items() if key not in mounted for route in routes]


def _walk_starlette(
    routing: Any,
    entries: Any,
    prefix: str,
    routes: list[tuple[str, bool]],
    mounted: set[int],
    depth: int,
) -> None:
    if depth > ROUTES_DEPTH:
        return
    for entry in entries:
        if len(routes) >= ROUTES_MOST:
            return
        if isinstance(entry, routing.Mount):
            mounted.add(id(entry.app))
            _walk_starlette(routing, entry.routes, prefix + entry.path, routes, mounted, depth + 1)
        elif isinstance(entry, routing.Route):
            methods = entry.methods  # None: an endpoint class, which takes any method
            path = prefix + entry.path
            if (methods is None or "GET" in methods) and path not in FASTAPI_OWN:
                routes.append((path, "{" in path))
