"""Stopping a run's services: in a thread of its own beside the reading, or all at once,
the dependents first; none outlives memgate."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from gate.errors import RunError
from gate.run.progress import QuietObserver, Watched
from gate.service.process import ServiceProcess, StopInfo

CENSUS_TIMEOUT_S = 30.0
"""The longest wait for the services' censuses at the end of the load."""


class Stopping:
    """The services stopped in a thread of their own (:func:`stop_all`), quietly (the
    reading beside it says what it does), once ``check`` and then ``first`` were done
    for every one; :meth:`join` waits for it and raises what the stop raised,
    or the check's refusal once all are stopped (``refused``). Cut short (a Ctrl-C
    while waiting), every service is killed."""

    def __init__(
        self,
        services: Sequence[ServiceProcess],
        first: Callable[[ServiceProcess], None] = lambda service: None,
        check: Callable[[ServiceProcess], None] = lambda service: None,
    ) -> None:
        self.services = services
        self._first = first
        self._check = check
        self.refused = False
        self._stops: list[tuple[ServiceProcess, StopInfo]] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="memgate-stop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        refusal: RunError | None = None
        try:
            try:
                # Checked while the census counts, each one (a daemon found is adopted).
                for service in self.services:
                    try:
                        self._check(service)
                    except RunError as exc:  # raised once every service is stopped
                        refusal = refusal or exc
                for service in self.services:
                    self._first(service)
            finally:
                self._stops = stop_all(self.services, Watched(QuietObserver()))
            if refusal is not None:
                self.refused = True
                raise refusal
        except BaseException as exc:  # handed to join's caller
            self._error = exc

    def join(self) -> list[tuple[ServiceProcess, StopInfo]]:
        try:
            self._thread.join()
        except BaseException:
            self.kill()
            raise
        if self._error is not None:
            raise self._error
        return self._stops

    def kill(self) -> None:
        """Kill every service now; the stop thread then finds them gone and ends."""
        for service in self.services:
            service.kill()
        self._thread.join(timeout=5)


def census_done(service: ServiceProcess) -> None:
    """Wait until the service's census after the load is done (or given up on)."""
    service.wait_census("end", after="start", timeout=CENSUS_TIMEOUT_S)


def stop_all(
    services: Sequence[ServiceProcess], watched: Watched
) -> list[tuple[ServiceProcess, StopInfo]]:
    """Stop ``services`` in the reverse order (what depends on the others first). If
    stopping is cut short (a second Ctrl-C, a CI cancel's SIGTERM), the services not yet
    stopped are killed: none outlives memgate."""
    stops = []
    left = list(reversed(services))
    try:
        while left:
            watched.phase(f"stopping the {left[0].who}")
            stops.append((left[0], left[0].stop()))
            left.pop(0)
    finally:
        for service in left:
            service.kill()
    return stops
