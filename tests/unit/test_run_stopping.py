"""Stopping a run's services (gate.run.stopping)."""

from __future__ import annotations

import pytest

from gate.errors import RunError
from gate.run.progress import QuietObserver, Watched
from gate.run.stopping import Stopping, stop_all
from gate.service.process import StopInfo


class FakeService:
    """Stands in for a ServiceProcess while the runner stops services."""

    def __init__(
        self, name: str, log: list[str], interrupt: bool = False, error: bool = False
    ) -> None:
        self.who, self.log, self.interrupt, self.error = f"service {name}", log, interrupt, error

    def stop(self) -> StopInfo:
        self.log.append(f"stop {self.who}")
        if self.interrupt:  # a second Ctrl-C while this one is being stopped
            raise KeyboardInterrupt
        if self.error:
            raise OSError("cannot signal")
        return StopInfo("SIGINT", 0)

    def kill(self) -> None:
        self.log.append(f"kill {self.who}")


def test_services_stop_in_reverse_and_an_interrupted_stop_kills_the_rest() -> None:
    log: list[str] = []
    services = [FakeService(n, log) for n in ("db", "worker", "api")]
    stops = stop_all(services, Watched(QuietObserver()))  # type: ignore[arg-type]
    assert log == ["stop service api", "stop service worker", "stop service db"]
    assert [s.who for s, _ in stops] == ["service api", "service worker", "service db"]
    log.clear()
    services[1].interrupt = True
    with pytest.raises(KeyboardInterrupt):
        stop_all(services, Watched(QuietObserver()))  # type: ignore[arg-type]
    assert log == [
        "stop service api",
        "stop service worker",
        "kill service worker",
        "kill service db",
    ]


def test_a_stop_beside_the_reading_hands_back_its_stops_or_its_error() -> None:
    log: list[str] = []
    services = [FakeService(n, log) for n in ("db", "api")]
    stopping = Stopping(services)  # type: ignore[arg-type]
    assert [s.who for s, _ in stopping.join()] == ["service api", "service db"]
    log.clear()
    services[0].error = True
    stopping = Stopping(services)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="cannot signal"):
        stopping.join()
    assert log == ["stop service api", "stop service db", "kill service db"]


def test_a_port_check_refused_in_the_stop_thread_is_raised_once_every_service_stopped() -> None:
    """Read live, each service's port is checked beside the reading, while its census
    counts and before the stop: a refusal stops every service first, then is raised."""
    log: list[str] = []
    services = [FakeService(n, log) for n in ("db", "api")]

    def check(service: FakeService) -> None:
        log.append(f"check {service.who}")
        if service.who == "service api":
            raise RunError("port 8000 is served by pid 42, which memgate does not profile")

    stopping = Stopping(services, check=check)  # type: ignore[arg-type]
    with pytest.raises(RunError, match="which memgate does not profile"):
        stopping.join()
    assert stopping.refused
    assert log == ["check service db", "check service api", "stop service api", "stop service db"]
    fine = Stopping(services, check=lambda service: None)  # type: ignore[arg-type]
    assert len(fine.join()) == 2 and not fine.refused
