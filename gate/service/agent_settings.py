"""What memgate's agent inside the service is told (``$MEMGATE_AGENT``, JSON): how to
profile, how to record, where its files go, and how often to collect."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gate.scenario import ProfileSpec

RETAINED_EVERY_S = 0.2
"""The agent's full collections come at most this often in each process (a pull
request's check of the demo measures for 3 to 10 s)..."""
RETAINED_SHARE = 0.05
"""...and so much less often that their pauses take at most this share of the time: the
demo's collection (33,000 objects) takes 8-17 ms under memray, one every 0.2-0.35 s; a
framework's heap of 700,000 objects takes about 60 ms unprofiled, one every 1.2 s or more."""


def agent_settings(profile: ProfileSpec, out_dir: Path, recording: dict[str, object]) -> str:
    """What the agent inside the service is told (``$MEMGATE_AGENT``): how to profile,
    how to record (the recorder's ``recording``: ``capture``, where to stream or write),
    where the garbage collector's counts and forked processes' ports go."""
    settings = {
        **recording,
        "folder": str(out_dir),
        "gc": str(out_dir / "gc"),
        "trace_python_allocators": profile.trace_python_allocators,
        "native": profile.native,
        "follow_fork": profile.follow_fork,
        "census": profile.census,
        "retained": (
            {"every_s": RETAINED_EVERY_S, "share": RETAINED_SHARE}
            if profile.retained_heap
            else None
        ),
        "parent": os.getpid(),
    }
    return json.dumps(settings)
