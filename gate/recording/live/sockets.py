"""A reader connected to a memray tracker's loopback socket, and whether a process is
alive. The kernel's table of those sockets (listening ports, backlogs) is
:mod:`gate.tcp_table`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gate.errors import RunError
from gate.recording.capture_file import memray_reason, quiet_memray

if TYPE_CHECKING:
    from memray import SocketReader


def open_reader(port: int) -> SocketReader:
    """A reader connected to the tracker listening on ``port``, its header read."""
    from memray import SocketReader

    quiet_memray()
    reader = SocketReader(port)
    try:
        reader.__enter__()
    except (OSError, RuntimeError, ValueError) as exc:
        raise RunError(f"127.0.0.1:{port}: not a memray stream: {memray_reason(exc)}") from None
    return reader


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
