"""``python -m gate.load CONFIG_JSON``: the load process (Locust's master when
``processes`` is above 1); ``python -m gate.load --worker INDEX PORT PID CONFIG_JSON``:
one of its workers."""

from __future__ import annotations

import json
import os
import sys

from gate.agent.memgate_agent import die_with_parent
from gate.load import child, master, worker
from gate.load.process import LoadConfig


def main(argv: list[str]) -> int:
    # No load outlives memgate, even one killed with SIGKILL.
    die_with_parent(int(os.environ.get("MEMGATE_PARENT", "0")) or None)
    if argv[:1] == ["--worker"]:
        index, port, pid, blob = argv[1:]
        return worker.main(LoadConfig(**json.loads(blob)), int(index), int(port), int(pid))
    config = LoadConfig(**json.loads(argv[0]))
    return child.main(config, master.drive if config.processes > 1 else child.drive)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
