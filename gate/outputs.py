"""The files a run and a check write: their names, defined once.

``OUT`` is a run's output folder (``memgate-out/NAME`` by default). A one-service
scenario keeps everything in ``OUT``; a scenario of several services keeps each
service's files in ``OUT/SERVICE`` and the load's (and a failure's account) in ``OUT``.
"""

from __future__ import annotations

from pathlib import Path

RESULT = "result.json"
"""What a run measured (``docs/result-schema.md``)."""
REPORT_JSON = "report.json"
"""A check's verdict and findings (``docs/report-schema.md``); ``memgate merge`` reads it."""
REPORT_HTML = "report.html"
FAILURE = "failure.json"
"""Why a run could not measure, and what it saw until then."""
CAPTURE = "capture.bin"
"""memray's capture of the service's main process (``capture.bin.PID`` for its forks)."""
SERVICE_LOG = "service.log"
LOAD_LOG = "load.log"
LOAD_TIMELINE = "load.jsonl"
LOAD_STOP = "load.stop"
"""Written by memgate to end a soak's load early (a certain leak)."""

EARLIER_RUN_FILES = (FAILURE, RESULT, REPORT_JSON, REPORT_HTML)
"""What a run in the folder wrote last time and this run replaces, or must not leave
beside its own failure (``memgate merge`` would read the old report as this run's)."""
RUN_FILES = (RESULT, SERVICE_LOG)
"""Files ``memgate run`` and ``check`` write into a service's folder: such a folder
without a ``report.json`` is a check that did not finish."""


def service_folder(out_dir: Path, service: str | None) -> Path:
    """Where one service's files go: ``out_dir`` itself for a one-service scenario."""
    return out_dir / service if service else out_dir
