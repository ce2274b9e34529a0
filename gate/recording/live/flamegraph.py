"""memray's own flame graph of what a live stream holds now, memgate's agent cut out."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.model import Frame
from gate.service.interpreter import AGENT, without_agent

if TYPE_CHECKING:
    from memray import AllocationRecord, SocketReader


def write_flamegraph(
    reader: SocketReader,
    pid: int,
    times: list[float],
    heaps: list[int],
    path: Path,
    trace_python_allocators: bool,
) -> None:
    """memray's flame graph page of the allocations alive now in ``reader``'s process
    (``pid``; its kept points' ``times`` and ``heaps`` draw the memory graph)."""
    from memray import FileFormat, Metadata
    from memray import MemorySnapshot as MemraySnapshot
    from memray.reporters.flamegraph import FlameGraphReporter

    native = reader.has_native_traces
    served = [_Served(r, native) for r in reader.get_current_snapshot(merge_threads=True)]
    records: list[Any] = [record for record in served if not record.the_agents]
    started = datetime.datetime.fromtimestamp(times[0] if times else time.time())
    ended = datetime.datetime.fromtimestamp(times[-1] if times else time.time())
    reporter = FlameGraphReporter.from_snapshot(
        records,
        memory_records=[
            MemraySnapshot(int(t * 1000), 0, h) for t, h in zip(times, heaps, strict=True)
        ],
        native_traces=native,
    )
    metadata = Metadata(
        start_time=started,
        end_time=ended,
        total_allocations=sum(r.n_allocations for r in records),
        total_frames=0,
        peak_memory=max(heaps, default=0),
        command_line=" ".join(
            word for word in (reader.command_line or "").split() if word != str(AGENT)
        ),
        pid=pid,
        main_thread_id=0,
        python_allocator="pymalloc",
        has_native_traces=native,
        trace_python_allocators=trace_python_allocators,
        file_format=FileFormat.ALL_ALLOCATIONS,
    )
    with open(path, "w", encoding="utf-8") as out:
        reporter.render(out, metadata, show_memory_leaks=False, merge_threads=True, inverted=False)


class _Served:
    """A record of memray's snapshot as the service's code made it: the stack without
    memgate's agent (what memray's flame graph reads of a record)."""

    def __init__(self, record: AllocationRecord, native: bool) -> None:
        self.tid = record.tid
        self.thread_name = record.thread_name
        self.size = record.size
        self.n_allocations = record.n_allocations
        places = list(record.hybrid_stack_trace() if native else record.stack_trace())
        kept = without_agent(tuple(Frame(*place) for place in places))
        self.the_agents = kept is None
        """An allocation of the agent's own, not the service's."""
        self._stack = places[: len(kept)] if kept is not None else []

    def stack_trace(self) -> list[Any]:
        return self._stack

    hybrid_stack_trace = stack_trace
