"""One run of a scenario: its services under memray, the Locust load, a result each.

``orchestrate`` (order and phases), ``refusals`` (runs that did not measure),
``failure`` (``failure.json``), ``assemble`` (a service's result from its captures and
samples), ``progress`` (what a run tells while it goes).
"""

from gate.run.orchestrate import run_scenario, run_services
from gate.run.progress import QuietObserver, RunObserver

__all__ = ["QuietObserver", "RunObserver", "run_scenario", "run_services"]
