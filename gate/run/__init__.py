"""One run of a scenario: its services under memray, the Locust load, a result each.

``orchestrate`` (order and phases: ``run_services``), ``refusals`` (runs that did not
measure), ``failure`` (``failure.json``), ``assemble`` (a service's result from its
captures and samples), ``progress`` (what a run tells while it goes). Importing the
package itself costs nothing.
"""
