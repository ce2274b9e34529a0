"""What memgate shows on a terminal while it works: the run's progress on standard error
(only on a terminal), and each run's summary and each service's verdict on standard
output as they come (the CLI and the pytest plugin, whose output pytest captures, both
use it); and an error's one line."""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING

from gate.errors import one_line

if TYPE_CHECKING:
    from pathlib import Path

    from gate.check import Ran, Recorded, ScenarioCheck
    from gate.report.formats import Format
    from gate.report.parts import Report
    from gate.scenario import ScenarioFile


def width() -> int:
    """Columns for tables: the terminal's, or 160 when standard output is no terminal."""
    return max(shutil.get_terminal_size().columns if sys.stdout.isatty() else 160, 100)


class TerminalObserver:
    """A check's observer (:class:`gate.check.Observer`): a progress bar while a scenario
    runs (none when ``quiet`` or not on a terminal), then what it found."""

    def __init__(self, scenario: ScenarioFile, *, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._console = Console(stderr=True)
        self._enabled = not quiet and self._console.is_terminal
        load = scenario.load
        self._total = load.warmup_requests + load.requests if load.requests else None
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failures]} failed"),
            console=self._console,
            transient=True,
            disable=not self._enabled,
        )
        self._task = self._progress.add_task("starting", total=self._total, failures=0)
        self.show_capture_progress = self._enabled

    def __enter__(self) -> TerminalObserver:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def phase(self, name: str) -> None:
        if name.startswith("reading the"):
            # memray draws its own progress bars while it reads; ours steps aside.
            self._progress.stop()
        self._progress.update(self._task, description=name)

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        self._progress.update(
            self._task, description=f"load ({phase})", completed=requests, failures=failures
        )

    def ran(self, ran: Ran) -> None:
        from gate.report.terminal import render_run

        self._progress.stop()  # the run is over
        print(render_run(ran.result, width=width()), end="")
        print(f"result: {ran.path}")

    def judged(self, report: Report) -> None:
        from gate.report.parts import dependency_notes
        from gate.report.terminal import render_decision

        text = render_decision(
            report.result.scenario.key,
            report.decision,
            width=width(),
            changed=dependency_notes(report),
        )
        print(text, end="")

    def reported(self, files: dict[Format, Path]) -> None:
        print("reports: " + ", ".join(str(p) for p in files.values()))

    def recorded(self, recorded: Recorded) -> None:
        print(f"recorded in {recorded.path} ({recorded.runs} runs)")

    def concluded(self, check: ScenarioCheck) -> None:
        """The scenario's verdict, when it has several services (else it was just said)."""
        if len(check.checked) > 1:
            each = ", ".join(
                f"{c.report.result.scenario.service} {c.report.decision.verdict.value}"
                for c in check.checked
            )
            print(f"memgate check: {check.name}: {check.verdict.value.upper()} ({each})")


def say_error(line: str) -> None:
    """One line on standard error; on standard output inside Actions, where the runner
    reads the two streams apart, so that the pause of workflow commands covers it."""
    from gate import github

    print(one_line(line), file=sys.stdout if github.in_actions() else sys.stderr, flush=True)
