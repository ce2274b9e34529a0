"""memgate talks to the service on loopback only, never through a proxy: with
``HTTP_PROXY`` set, the health check went to the proxy, which refused, and memgate
blamed another program for holding the port."""

from __future__ import annotations

import http.client
import socket
import urllib.request
from collections.abc import Mapping

PROXY_VARIABLES = frozenset(
    name
    for scheme in ("http", "https", "all", "no")
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
)
"""What urllib and requests (Locust's client) read a proxy from."""

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def open_direct(url: str, timeout: float) -> http.client.HTTPResponse:
    """``urllib.request.urlopen`` without a proxy, whatever the environment says."""
    response: http.client.HTTPResponse = _DIRECT.open(url, timeout=timeout)
    return response


def without_proxies(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for the load's processes: no proxy variables, so that Locust's users
    reach the service itself."""
    return {name: value for name, value in env.items() if name not in PROXY_VARIABLES}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
