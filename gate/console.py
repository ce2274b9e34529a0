"""What memgate shows on a terminal while it works: the run's progress on standard error
(only on a terminal), and each run's summary and each service's verdict on standard
output as they come (the CLI and the pytest plugin, whose output pytest captures, both
use it); and an error's one line."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gate.check import DEFAULT_BASELINES, AlreadyRecorded, Recorded
from gate.errors import one_line, printable
from gate.layout import Kept

if TYPE_CHECKING:
    from gate.check import Ran, Recording, ScenarioCheck
    from gate.layout import NotKept
    from gate.report.formats import Format
    from gate.report.report import Report
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
        self._started = False
        self.show_capture_progress = self._enabled

    def __enter__(self) -> TerminalObserver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def _stop(self) -> None:
        """Take the bar down, if it is drawn at all: rich before 15 prints an empty line
        when a disabled bar is stopped."""
        if self._enabled:
            self._progress.stop()

    def _start(self) -> None:
        """Draw the bar from the run's first phase on, once: what is said before (the
        previous run's folder) goes to standard output, not through the bar's console."""
        if not self._started:
            self._started = True
            self._progress.start()

    def phase(self, name: str) -> None:
        if name.startswith("reading the"):
            # memray draws its own progress bars while it reads; ours steps aside.
            self._started = True
            self._stop()
        self._start()
        self._progress.update(self._task, description=name)

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        self._start()
        self._progress.update(
            self._task, description=f"load ({phase})", completed=requests, failures=failures
        )

    def kept(self, previous: Kept | NotKept) -> None:
        say(previous_line(previous))

    def ran(self, ran: Ran) -> None:
        from gate.report.terminal import render_run

        self._stop()  # the run is over
        say(render_run(ran.result, width=width()), end="")
        say(f"result: {ran.path}")

    def judged(self, report: Report) -> None:
        from gate.report.parts import dependency_notes
        from gate.report.terminal import render_decision

        text = render_decision(
            report.result.scenario.key,
            report.decision,
            width=width(),
            changed=dependency_notes(report),
        )
        say(text, end="")

    def reported(self, files: dict[Format, Path]) -> None:
        say("reports: " + ", ".join(str(p) for p in files.values()))

    def recorded(self, recording: Recording) -> None:
        say(recording_line(recording))

    def concluded(self, check: ScenarioCheck) -> None:
        """The scenario's verdict, when it has several services (else it was just said)."""
        if len(check.checked) > 1:
            each = ", ".join(
                f"{c.report.result.scenario.service} {c.report.decision.verdict.value}"
                for c in check.checked
            )
            say(f"memgate check: {check.name}: {check.verdict.value.upper()} ({each})")


def previous_line(previous: Kept | NotKept) -> str:
    """Where the previous run's folder went, or why it stayed (one line)."""
    if isinstance(previous, Kept):
        return f"previous run kept in {previous.previous}"
    return (
        f"previous run not kept: {previous.reason}; this run writes into {previous.folder},"
        " over the files there"
    )


ACCEPT_REASON = "why this growth is expected"


def recording_line(recording: Recording) -> str:
    """What ``--record`` did with one service's run, or why it did nothing and what to run
    instead (one line)."""
    label = recording.label
    if isinstance(recording, Recorded):
        dropped = f"; {_runs(recording.dropped, 'older run')} dropped" if recording.dropped else ""
        return (
            f"recorded: {label} {recording.run_id} appended to {recording.path}"
            f" ({_runs(recording.runs, 'run')}{dropped})"
        )
    if isinstance(recording, AlreadyRecorded):
        return (
            f"not recorded: {label} {recording.run_id} is already in {recording.path}"
            f" ({_runs(recording.runs, 'run')})"
        )
    failed = "the check failed" if label == "run" else f"the {label} failed its check"
    return (
        f"not recorded in {recording.path}: {failed}, and a failing run enters the"
        f" history only when accepted: {accept_command(recording.result, recording.baselines)}"
    )


def accept_command(result: Path, baselines: Path) -> str:
    """The command that accepts the run in ``result`` into the histories in ``baselines``."""
    words = ["memgate", "baseline", "accept", str(result)]
    if baselines != DEFAULT_BASELINES:
        words += ["--baselines", str(baselines)]
    return f"{shlex.join(words)} --reason {shlex.quote(ACCEPT_REASON)}"


def _runs(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def say_error(line: str) -> None:
    """One line on standard error; on standard output inside Actions, where the runner
    reads the two streams apart, so that the pause of workflow commands covers it."""
    from gate import actions

    out = sys.stdout if actions.in_actions() else sys.stderr
    print(printable(one_line(line)), file=out, flush=True)


def say(text: str, end: str = "\n") -> None:
    """Print to standard output, made printable: names and log lines from the measured
    code are in what memgate prints (:func:`gate.errors.printable`)."""
    print(printable(text), end=end, flush=True)
