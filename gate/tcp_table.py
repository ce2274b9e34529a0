"""This machine's TCP sockets, as Linux shows them: the ports listening, the bytes waiting
in connections (a memray tracker's backlog), and which processes hold a listening port.

The kernel is asked through netlink's ``sock_diag`` for the TCP sockets in one state
(listening, or established): it filters by state itself, so the answer's cost follows the
sockets asked for. ``/proc/net/tcp`` lists every socket, closed ones waiting out
``TIME_WAIT`` too: a load of short connections (a sync gunicorn worker closes each)
leaves tens of thousands there for a minute, and reading and parsing that table once a
second per process stalled the live reading for seconds (seen here: 15,500 lines, 3-5 s
without a poll in a 4 s load of the prefork example). It is read only where netlink's
``sock_diag`` is not to be had.

Who holds a listening socket is told by its inode, found among the links in each
process's ``/proc/PID/fd``: psutil's ``net_connections`` parses the whole table for
every process asked about, 0.06 s each with 14,000 sockets in ``TIME_WAIT``, and a
Flask app's check at the load's end took 0.74 s of the 2 cores' time that way.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import NamedTuple

from gate.errors import RunError

LISTEN = 10
ESTABLISHED = 1
"""TCP states, as the kernel numbers them (``include/net/tcp_states.h``)."""


class Socket(NamedTuple):
    local: int
    """The local port."""
    remote: int
    """The remote port (0 for a listening socket)."""
    unread: int
    """Bytes received and not yet read (Linux's ``rx_queue``)."""
    inode: int
    """The socket's inode: ``socket:[INODE]`` in the ``/proc/PID/fd`` of its holders."""


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2, its inet_diag_sockid zeroed
_PORTS = struct.Struct(">HH")  # inet_diag_msg: source and destination port, at offset 4
_QUEUES = struct.Struct("=II")  # inet_diag_msg: rqueue, wqueue, at offset 56
_INODE = struct.Struct("=I")  # inet_diag_msg: the inode, at offset 68
_LOOPBACK_V4 = (socket.inet_aton("127.0.0.1"), bytes(4))  # at offset 8: 127.0.0.1, any
_LOOPBACK_V6 = (socket.inet_pton(socket.AF_INET6, "::1"), bytes(16))
_FAMILIES = ((socket.AF_INET, _LOOPBACK_V4), (socket.AF_INET6, _LOOPBACK_V6))


def _sockets(state: int, loopback: bool = True) -> list[Socket] | None:
    """Every TCP socket in ``state`` on the loopback or on any address (or on any local
    address at all, ``loopback=False``), from netlink's ``sock_diag``; ``None`` where the
    kernel does not answer it."""
    found: list[Socket] = []
    netlink = getattr(socket, "AF_NETLINK", None)
    if netlink is None:  # not Linux
        return None
    try:
        with socket.socket(netlink, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            for family, addresses in _FAMILIES:
                request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << state)
                diag.send(
                    _HEADER.pack(
                        _HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0
                    )
                    + request
                )
                _read_dump(diag, len(addresses[0]), addresses if loopback else None, found)
    except (OSError, struct.error):  # no sock_diag, or a reply cut short
        return None
    return found


def _read_dump(
    diag: socket.socket,
    width: int,
    addresses: tuple[bytes, bytes] | None,
    found: list[Socket],
) -> None:
    """Append the sockets of one dump bound to one of ``addresses`` (any, ``None``) to
    ``found``, up to its end."""
    while True:
        data = diag.recv(1 << 16)
        if not data:
            raise OSError("sock_diag: an empty reply before the dump's end")
        at = 0
        while at + _HEADER.size <= len(data):
            length, kind = _HEADER.unpack_from(data, at)[:2]
            if length < _HEADER.size or at + length > len(data):
                raise OSError(
                    "sock_diag: a message longer than its reply or shorter than its header"
                )
            if kind == _NLMSG_DONE:
                return
            if kind == _NLMSG_ERROR:
                raise OSError(-struct.unpack_from("=i", data, at + _HEADER.size)[0], "sock_diag")
            body = at + _HEADER.size
            if addresses is None or data[body + 8 : body + 8 + width] in addresses:
                local, remote = _PORTS.unpack_from(data, body + 4)
                unread = _QUEUES.unpack_from(data, body + 56)[0]
                found.append(Socket(local, remote, unread, _INODE.unpack_from(data, body + 68)[0]))
            at += (length + 3) & ~3


_PROC_LOOPBACK = {
    "/proc/net/tcp": {"0100007F", "7F000001", "00000000"},  # 127.0.0.1 (LE, BE), any
    "/proc/net/tcp6": {"00000000000000000000000001000000", "0" * 32},  # ::1, any
}


def _proc_sockets(state: int, loopback: bool = True) -> list[Socket]:
    """As :func:`_sockets`, from ``/proc/net/tcp`` (and ``tcp6``)."""
    found = []
    wanted = f"{state:02X}"
    for table, addresses in _PROC_LOOPBACK.items():
        try:
            text = Path(table).read_text("ascii")
        except OSError as exc:
            if table == "/proc/net/tcp":
                raise RunError(f"memgate needs Linux's {table}: {exc.strerror or exc}") from None
            continue  # no IPv6
        for line in text.splitlines()[1:]:
            fields = line.split(maxsplit=10)
            if len(fields) > 9 and fields[3] == wanted:
                address, _, local = fields[1].partition(":")
                if not loopback or address in addresses:
                    remote = fields[2].rpartition(":")[2]
                    unread = fields[4].partition(":")[2]
                    found.append(
                        Socket(int(local, 16), int(remote, 16), int(unread, 16), int(fields[9]))
                    )
    return found


def _in_state(state: int, loopback: bool = True) -> list[Socket]:
    found = _sockets(state, loopback)
    return found if found is not None else _proc_sockets(state, loopback)


def listening_ports() -> set[int]:
    """The TCP ports a connection to the loopback would find listening (Linux)."""
    return {found.local for found in _in_state(LISTEN)}


def backlogs() -> dict[int, int]:
    """By remote port: bytes waiting to be read in this machine's connections to
    127.0.0.1 on that port (Linux's ``rx_queue``: memgate's, of a tracker's stream)."""
    waiting: dict[int, int] = {}
    for found in _in_state(ESTABLISHED):
        waiting[found.remote] = waiting.get(found.remote, 0) + found.unread
    return waiting


def listeners(port: int) -> set[int] | None:
    """The pids holding a socket listening on ``port``, on any address (those of this
    user's processes); ``None`` when it cannot be told (no ``/proc``)."""
    try:
        inodes = {found.inode for found in _in_state(LISTEN, loopback=False) if found.local == port}
    except RunError:
        return None
    if not inodes:
        return set()
    links = {f"socket:[{inode}]" for inode in inodes}
    holders = set()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # another user's, or gone
        for descriptor in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{descriptor}") in links:
                    holders.add(pid)
                    break
            except OSError:
                continue  # closed meanwhile
    return holders
