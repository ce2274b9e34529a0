"""gate.tcp_table: the kernel's view of TCP sockets, through netlink's sock_diag and through
/proc, on real sockets of this process and of a child."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from gate import tcp_table as sockets


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
    assert (mine, port, 3000) in {found[:3] for found in by_netlink}
    assert (mine, port, 3000) in {found[:3] for found in by_proc}
    assert {found for found in by_netlink if found.local == mine} == {
        found for found in by_proc if found.local == mine
    }  # the inode too
    listening = sockets._sockets(sockets.LISTEN)
    assert listening is not None and port in {found.local for found in listening}
    assert port in {found.local for found in sockets._proc_sockets(sockets.LISTEN)}


def test_listening_ports_and_backlogs(connected: tuple[int, socket.socket, socket.socket]) -> None:
    port, client, _ = connected
    assert port in sockets.listening_ports()
    assert sockets.backlogs()[port] == 3000
    client.recv(3000, socket.MSG_WAITALL)
    assert sockets.backlogs().get(port, 0) == 0


def test_a_closed_port_is_not_listening() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening
        assert port not in sockets.listening_ports()


def test_without_netlink_proc_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(sockets, "_sockets", lambda state, loopback=True: None)
        assert server.getsockname()[1] in sockets.listening_ports()


class _Replies:
    """A netlink socket's side that answers with the datagrams given, one per recv."""

    def __init__(self, *datagrams: bytes) -> None:
        self.datagrams = list(datagrams)

    def recv(self, size: int) -> bytes:
        return self.datagrams.pop(0)


def _message(kind: int, body: bytes = b"") -> bytes:
    header = sockets._HEADER.pack(sockets._HEADER.size + len(body), kind, 0, 1, 0)
    return header + body + bytes(-len(body) % 4)  # each message padded to 4 bytes


def _socket_message(local: int, remote: int, address: bytes, unread: int, inode: int = 7) -> bytes:
    """An inet_diag_msg: family, state, timer, retrans, ports, addresses, ..., queues, uid,
    inode."""
    body = bytearray(72)
    body[4:8] = struct.pack(">HH", local, remote)
    body[8 : 8 + len(address)] = address
    body[56:64] = struct.pack("=II", unread, 0)
    body[68:72] = struct.pack("=I", inode)
    return _message(20, bytes(body))


LOOPBACK = socket.inet_aton("127.0.0.1")


def test_a_dump_over_several_datagrams_is_read_to_its_end() -> None:
    found: list[sockets.Socket] = []
    replies = _Replies(
        _socket_message(8000, 0, LOOPBACK, 0) + _socket_message(41000, 8000, LOOPBACK, 12),
        _socket_message(9000, 0, socket.inet_aton("10.0.0.5"), 0),  # not the loopback
        _socket_message(9100, 0, bytes(4), 3) + _message(sockets._NLMSG_DONE),
        _socket_message(9999, 0, LOOPBACK, 0),  # after the dump's end: not read
    )
    sockets._read_dump(replies, 4, sockets._LOOPBACK_V4, found)  # type: ignore[arg-type]
    assert found == [(8000, 0, 0, 7), (41000, 8000, 12, 7), (9100, 0, 3, 7)]
    assert len(replies.datagrams) == 1


@pytest.mark.parametrize(
    "datagrams",
    [
        (_message(sockets._NLMSG_ERROR, struct.pack("=i", -22)),),  # the kernel refused
        (b"",),  # an empty reply
        (_socket_message(8000, 0, LOOPBACK, 0)[:40],),  # a message cut short
        (sockets._HEADER.pack(4, 20, 0, 1, 0),),  # a length shorter than the header
    ],
    ids=["error", "empty", "cut-short", "short-length"],
)
def test_a_bad_reply_is_an_os_error_not_a_hang(datagrams: tuple[bytes, ...]) -> None:
    with pytest.raises(OSError):
        sockets._read_dump(_Replies(*datagrams), 4, sockets._LOOPBACK_V4, [])  # type: ignore[arg-type]


def test_a_bad_reply_falls_back_to_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise OSError(22, "sock_diag")

    monkeypatch.setattr(sockets, "_read_dump", refuse)
    assert sockets._sockets(sockets.LISTEN) is None
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert server.getsockname()[1] in sockets.listening_ports()


LISTENING_CHILD = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.2", 0))  # not 127.0.0.1: its holders are found on any address
server.listen()
print(server.getsockname()[1], flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("netlink", [True, False], ids=["netlink", "proc"])
def test_listeners_are_the_processes_holding_the_listening_socket(
    monkeypatch: pytest.MonkeyPatch, netlink: bool
) -> None:
    if not netlink:
        monkeypatch.setattr(sockets, "_sockets", lambda state, loopback=True: None)
    with subprocess.Popen(
        [sys.executable, "-c", LISTENING_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        with socket.socket() as mine:
            mine.bind(("127.0.0.1", 0))
            mine.listen()
            own = mine.getsockname()[1]
            with socket.create_connection(("127.0.0.1", own)):  # not a listener's socket
                assert sockets.listeners(port) == {child.pid}
                assert sockets.listeners(own) == {os.getpid()}
        child.stdin.close()
    assert sockets.listeners(port) == set()  # nothing listens there now
