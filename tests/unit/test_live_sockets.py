"""gate.live.sockets: the kernel's view of loopback sockets, through netlink's sock_diag
and through /proc, on real sockets of this process."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from gate.live import sockets


@pytest.fixture
def connected() -> Iterator[tuple[int, socket.socket, socket.socket]]:
    """A listening port, and a connection to it whose client has 3,000 bytes unread."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                accepted.sendall(b"x" * 3000)
                time.sleep(0.05)
                yield port, client, accepted


def test_netlink_and_proc_see_the_same_listening_port_and_backlog(
    connected: tuple[int, socket.socket, socket.socket],
) -> None:
    port, client, _ = connected
    by_netlink = sockets._sockets(sockets.ESTABLISHED)
    if by_netlink is None:
        pytest.skip("this kernel does not answer netlink's sock_diag")
    by_proc = sockets._proc_sockets(sockets.ESTABLISHED)
    mine = client.getsockname()[1]
    assert (mine, port, 3000) in by_netlink
    assert (mine, port, 3000) in by_proc
    listening = sockets._sockets(sockets.LISTEN)
    assert listening is not None and port in {local for local, _, _ in listening}
    assert port in {local for local, _, _ in sockets._proc_sockets(sockets.LISTEN)}


def test_listening_ports_and_backlogs(connected: tuple[int, socket.socket, socket.socket]) -> None:
    port, client, _ = connected
    assert port in sockets._listening_ports()
    assert sockets._backlogs()[port] == 3000
    client.recv(3000, socket.MSG_WAITALL)
    assert sockets._backlogs().get(port, 0) == 0


def test_a_closed_port_is_not_listening() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening
        assert port not in sockets._listening_ports()


def test_without_netlink_proc_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(sockets, "_sockets", lambda state: None)
        assert server.getsockname()[1] in sockets._listening_ports()
