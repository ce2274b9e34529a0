"""Read memray's live streams of the service's processes: the live side of
:mod:`gate.recording.capture_file`, with the same reading (``snapshots()``,
``live_bytes_by_stack``); :mod:`gate.recording.live.recorder` is the recorder on it.

memgate's agent starts a ``memray.Tracker`` on a ``SocketDestination`` in the service's
main process (on the port memgate chose) and in every process it forks: there the agent
picks a free port, writes it to ``FOLDER/live.PID.port`` (ASCII and a newline, renamed
into place) and starts a tracker on it. Each tracker blocks until a reader connects.
:class:`LiveCapture` connects a ``memray.SocketReader`` to each and polls them from one
thread. A poll is memray's current snapshot: the live bytes of every stack, as the
reader's own thread has aggregated the stream so far.

Memory is bounded by the stacks times the points kept, not by the run's length: each
process keeps at most ``max_points`` polls. When a poll would exceed that, every other
kept poll is dropped (the first and the new one stay) and that process's polling
interval doubles, so its points stay evenly spaced over its own life; a fork started
late keeps finer spacing than the main process (the runner reads forks at the main
process's points, each at its last snapshot before). The last poll (taken by
:meth:`LiveCapture.stop`, or when a stream ends) is always kept. Besides, memray's reader
holds every live allocation of the service (not its history) in this process.

What memray 1.20's ``SocketReader`` does, read in its source and seen here:

- ``__enter__`` connects, retrying every 0.5 s without end while nothing listens (only
  a signal to the main thread breaks the loop); then it reads the stream's header
  *holding the GIL*. So it is called only once the tracker's port is listening (asked of
  the kernel, :mod:`gate.tcp_table`: a probe connection would be the one the tracker
  accepts). A tracker accepts, then writes its header when it is entered: the agent
  does both at once; one that accepted and never wrote would stall this process.
- A stream that is not memray's (or of another memray version) fails ``__enter__`` with
  an ``OSError``. A stream that ends (the process exited, or sent bad records) turns
  ``is_active`` false; ``get_current_snapshot`` still answers with everything the
  stream sent, which is then the process's last poll.
- The tracker sends its records in blocks of 4 KiB (``PIPE_BUF``) and flushes only
  when a block is full: under load that is a fraction of a millisecond, but a process
  that stops allocating leaves its last records unsent until more follow, so a poll
  may miss up to 4 KiB of records (seen here: 100 allocations of an idle process
  stayed unseen for seconds, until its stream ended).
"""

from gate.recording.live.process import LiveProcess
from gate.recording.live.reader import LiveCapture, LiveStats

__all__ = ["LiveCapture", "LiveProcess", "LiveStats"]
