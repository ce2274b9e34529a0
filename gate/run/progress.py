"""What a run tells while it goes (the terminal draws it; tests may ignore it), and
what it remembers of it for ``failure.json``."""

from __future__ import annotations

from typing import Protocol


class RunObserver(Protocol):
    """What a run reports while it goes (``gate.console`` draws it; tests may ignore it)."""

    show_capture_progress: bool
    """Let memray draw its own progress bars while the capture is read (long reads)."""

    def phase(self, name: str) -> None: ...

    def load_progress(self, phase: str, requests: int, failures: int) -> None: ...


class QuietObserver:
    """An observer that shows nothing."""

    show_capture_progress = False

    def phase(self, name: str) -> None:
        pass

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        pass


class Watched:
    """Passes the run's progress on to its observer, and remembers the last of it."""

    def __init__(self, observer: RunObserver) -> None:
        self.observer = observer
        self.show_capture_progress = observer.show_capture_progress
        self.last_phase = self.failed_in = ""
        self.requests = self.failures = 0

    def phase(self, name: str) -> None:
        self.last_phase = name
        self.observer.phase(name)

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        self.requests, self.failures = requests, failures
        self.observer.load_progress(phase, requests, failures)
