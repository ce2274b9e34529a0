"""The loopback sockets of memray's trackers, as Linux's ``/proc`` shows them, and a
reader connected to one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from gate.capture import _reason
from gate.errors import RunError

if TYPE_CHECKING:
    from memray import SocketReader


def _open(port: int) -> SocketReader:
    """A reader connected to the tracker listening on ``port``, its header read."""
    from memray import SocketReader

    reader = SocketReader(port)
    try:
        reader.__enter__()
    except (OSError, RuntimeError, ValueError) as exc:
        raise RunError(f"127.0.0.1:{port}: not a memray stream: {_reason(exc)}") from None
    return reader


_LOOPBACK = {
    "/proc/net/tcp": {"0100007F", "7F000001", "00000000"},  # 127.0.0.1 (LE, BE), any
    "/proc/net/tcp6": {"00000000000000000000000001000000", "0" * 32},  # ::1, any
}
_LISTEN = "0A"
_ESTABLISHED = "01"


def _listening_ports() -> set[int]:
    """The TCP ports a connection to the loopback would find listening (Linux)."""
    ports = set()
    for table, addresses in _LOOPBACK.items():
        try:
            text = Path(table).read_text("ascii")
        except OSError as exc:
            if table == "/proc/net/tcp":
                raise RunError(f"live reading needs Linux's {table}: {_reason(exc)}") from None
            continue  # no IPv6
        for line in text.splitlines()[1:]:
            fields = line.split(maxsplit=4)
            if len(fields) > 3 and fields[3] == _LISTEN:
                address, _, port = fields[1].partition(":")
                if address in addresses:
                    ports.add(int(port, 16))
    return ports


def _backlog(port: int) -> int:
    """Bytes waiting to be read in memgate's connections to 127.0.0.1:``port`` (Linux's
    ``rx_queue``); 0 where it cannot be read."""
    waiting = 0
    for table in _LOOPBACK:
        try:
            text = Path(table).read_text("ascii")
        except OSError:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split(maxsplit=5)
            if len(fields) > 4 and fields[3] == _ESTABLISHED:
                remote = fields[2].rpartition(":")[2]
                if int(remote, 16) == port:
                    waiting += int(fields[4].partition(":")[2], 16)
    return waiting


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
