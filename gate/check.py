"""The check: run a scenario, compare each of its services with its history, record it.

The CLI (``memgate run``, ``check``, ``compare``, ``report``) and the pytest plugin call
these functions: a run or a check with typed :class:`RunOptions`, a judgement of a
result with its history. They print nothing: what happens is told to an observer as it
happens, and what was decided is returned, with its exit code.

The rules: a run writes a folder of its own, the previous run's moved aside whole to
``OUT.previous``; it is compared with its scenario's history (less the run itself if it
was recorded, unless it is the reference); with ``record``, a run that did not fail is
appended to the history, and a failing one is left for ``memgate baseline accept``; a
scenario of several services takes the worst of their verdicts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gate.errors import ExitCode, InputError
from gate.layout import (
    REPORT_HTML,
    REPORT_JSON,
    RESULT,
    Kept,
    NotKept,
    keep_previous,
    service_folder,
)
from gate.outcome import Outcome
from gate.report.formats import Format, render
from gate.run.progress import RunObserver

if TYPE_CHECKING:
    from gate.baseline import BaselineStore
    from gate.model import RunResult
    from gate.report.report import Report
    from gate.scenario import BudgetSpec, ScenarioFile

DEFAULT_OUT = Path("memgate-out")
DEFAULT_BASELINES = Path("baselines")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What a run or a check is asked for, beyond the scenario file."""

    env: tuple[tuple[str, str], ...] = ()
    """Environment variables set for every service of the scenario."""
    requests: int | None = None
    """Measured requests after the warm-up, instead of the scenario's bound."""
    duration: float | None = None
    """Measured seconds after the warm-up, instead of the scenario's bound."""
    warmup: int | None = None
    """Warm-up requests, instead of the scenario's."""
    capture: str | None = None
    """``live`` or ``file``: how memray's records are read, instead of the scenario's."""
    flamegraph: bool = False
    """Write memray's flame graph of what is alive at the end of the load."""
    out: Path | None = None
    """A run's folder (default ``memgate-out/NAME``); for a check, the folder of one
    folder per scenario (default ``memgate-out``)."""
    record: bool = False
    """Append each run that did not fail to its history."""
    fail_on: Outcome = Outcome.FAIL
    """``flag`` also fails the build on flags."""
    baselines: Path = DEFAULT_BASELINES
    """The folder of baseline histories."""


def parse_env_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a pair; :class:`ValueError` if it is not one."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def open_scenario(path: Path, options: RunOptions) -> ScenarioFile:
    """The scenario file at ``path``, validated, with the options' overrides applied."""
    from gate.scenario import load_scenario

    return _overridden(load_scenario(path), options)


def _overridden(scenario: ScenarioFile, options: RunOptions) -> ScenarioFile:
    return scenario.with_overrides(
        env=dict(options.env),
        requests=options.requests,
        duration=options.duration,
        warmup=options.warmup,
        capture=options.capture,
        flamegraph=options.flamegraph,
    )


@dataclasses.dataclass(frozen=True)
class Ran:
    """One service's run, written."""

    result: RunResult
    path: Path
    """Its ``result.json``."""


@dataclasses.dataclass(frozen=True)
class Recorded:
    """A run appended to its history."""

    run_id: str
    path: Path
    """The history's file."""
    runs: int
    """Runs the history keeps now."""
    dropped: int = 0
    """Older runs it dropped to keep no more than ``gate.keep``."""
    label: str = "run"
    """What was recorded: ``run``, or ``counted run`` (``capture = "auto"``)."""


@dataclasses.dataclass(frozen=True)
class AlreadyRecorded:
    """A run its history already holds: nothing written."""

    run_id: str
    path: Path
    """The history's file."""
    runs: int
    label: str = "run"


@dataclasses.dataclass(frozen=True)
class FailedNotRecorded:
    """A failing run, which ``record`` leaves out of its history: it enters it only
    through ``memgate baseline accept``, with a reason."""

    path: Path
    """The history's file."""
    result: Path
    """The run's ``result.json``, to accept."""
    baselines: Path
    """The folder of histories the check used (``--baselines``)."""
    label: str = "run"


Recording = Recorded | AlreadyRecorded | FailedNotRecorded
"""What ``record`` did with one service's run."""


@dataclasses.dataclass(frozen=True)
class Checked:
    """One service's run judged against its history."""

    report: Report
    exit_code: ExitCode
    files: dict[Format, Path]
    """The reports written beside the run's ``result.json``: JSON and HTML."""
    recording: Recording | None = None
    """What ``record`` did with the run; ``None`` when the check did not record."""
    counted: Recording | None = None
    """``capture = "auto"``: what ``record`` did with the counted run that came before the
    judged, traced one (a recording check keeps both kinds)."""


@dataclasses.dataclass(frozen=True)
class ScenarioCheck:
    """A scenario file's check: one :class:`Checked` per service, in the order they ran."""

    name: str
    checked: tuple[Checked, ...]

    @property
    def verdict(self) -> Outcome:
        return Outcome.worst(c.report.decision.verdict for c in self.checked)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.worst(c.exit_code for c in self.checked)


class CheckObserver(Protocol):
    """What a check tells as it happens, besides its run's progress: the previous run's
    folder moved aside, each service's run, its verdict, its reports, its recording, and
    the scenario's verdict."""

    def kept(self, previous: Kept | NotKept) -> None: ...

    def ran(self, ran: Ran) -> None: ...

    def judged(self, report: Report) -> None: ...

    def reported(self, files: dict[Format, Path]) -> None: ...

    def recorded(self, recording: Recording) -> None: ...

    def concluded(self, check: ScenarioCheck) -> None: ...


class Observer(RunObserver, CheckObserver, Protocol):
    """A run's progress and a check's results (the terminal shows both)."""


def out_root(options: RunOptions) -> Path:
    """The folder a check writes one folder per scenario into."""
    return (options.out or DEFAULT_OUT).absolute()


def open_check(
    path: Path, options: RunOptions, taken: Mapping[str, Path] | None = None
) -> ScenarioFile:
    """The scenario file at ``path`` for a check: validated, named unlike the scenarios
    in ``taken`` (name to file) already checked with it, each of its services' histories
    read (a broken one is bad input, said before any run), then the options' overrides
    applied."""
    from gate.baseline import BaselineStore
    from gate.scenario import load_scenario

    scenario = load_scenario(path)
    other = (taken or {}).get(scenario.name)
    if other is not None:
        raise InputError(
            f"{path}: scenario {scenario.name!r} is also {other}'s: in one check they would"
            " write one output folder and one history; give each scenario its own name"
        )
    store = BaselineStore(options.baselines)
    for member in scenario.members():
        store.load(member.key)
    return _overridden(scenario, options)


def run(scenario: ScenarioFile, options: RunOptions, observer: Observer) -> list[Ran]:
    """Run ``scenario`` into ``options.out`` (default ``memgate-out/NAME``) and write each
    service's ``result.json``; :class:`~gate.errors.RunError` if the run could not
    measure."""
    ran, _ = _run(scenario, options.out or DEFAULT_OUT / scenario.name, observer)
    return ran


def _run(
    scenario: ScenarioFile, out: Path, observer: Observer, *, record: bool = False
) -> tuple[list[Ran], dict[str | None, Ran]]:
    """The run's results written, each service's judged one and, with ``capture =
    "auto"``, its counted one if it was not judged (by service; ``counted/SERVICE``)."""
    from gate.result import write_result
    from gate.run.auto import FOLDER as COUNTED
    from gate.run.orchestrate import run_all

    previous = keep_previous(out)
    if previous is not None:
        observer.kept(previous)
    runs = run_all(scenario, out, observer, trace_always=record)
    written = []
    for result in runs.judged:
        path = service_folder(out, result.scenario.service) / RESULT
        write_result(result, path)
        ran = Ran(result, path)
        observer.ran(ran)
        written.append(ran)
    counted = {}
    for result in runs.counted:
        path = service_folder(out / COUNTED, result.scenario.service) / RESULT
        write_result(result, path)
        counted[result.scenario.service] = Ran(result, path)
    return written, counted


def check_scenario(
    scenario: ScenarioFile, options: RunOptions, observer: Observer
) -> ScenarioCheck:
    """Run ``scenario`` into ``OUT/NAME`` (``OUT``: ``options.out``, default
    ``memgate-out``), compare each of its services with its own history, write their
    reports beside their results and, with ``options.record``, record each that did not
    fail (and say, for each, what was done). With ``capture = "auto"`` and ``record``,
    the load runs traced after the counted run in any case, and the counted run is
    recorded beside the traced one when that was, and did not fail against counted runs
    itself."""
    from gate.baseline import BaselineStore

    store = BaselineStore(options.baselines)
    members = scenario.members()
    out = out_root(options) / scenario.name
    checked = []
    judged, counted = _run(scenario, out, observer, record=options.record)
    for member, ran in zip(members, judged, strict=True):
        report, code = judge(
            ran.result, store, member.budgets, options.fail_on, result_path=ran.path
        )
        observer.judged(report)
        files = write_reports(report, ran.path.parent)
        observer.reported(files)
        recording: Recording | None = None
        also: Recording | None = None
        if options.record:
            recording = _record_unless_failed(ran, report, store, member.gate.keep, options)
            observer.recorded(recording)
            first = counted.get(member.service_name)
            # Its counted run goes in only beside a judged run that went in.
            if first is not None and isinstance(recording, Recorded | AlreadyRecorded):
                counted_report, _ = judge(first.result, store, member.budgets, options.fail_on)
                also = _record_unless_failed(
                    first, counted_report, store, member.gate.keep, options, "counted run"
                )
                observer.recorded(also)
        checked.append(Checked(report, code, files, recording, also))
    done = ScenarioCheck(scenario.name, tuple(checked))
    observer.concluded(done)
    return done


def _record_unless_failed(
    ran: Ran,
    report: Report,
    store: BaselineStore,
    keep: int,
    options: RunOptions,
    label: str = "run",
) -> Recording:
    """Record a run that did not fail its check; a failing one is left out, with the
    command that would accept it."""
    if report.decision.verdict is Outcome.FAIL:
        return FailedNotRecorded(
            store.path(ran.result.scenario.key), ran.path, options.baselines, label
        )
    return record(ran.result, store, keep=keep, label=label)


def record(
    result: RunResult, store: BaselineStore, *, keep: int, label: str = "run"
) -> Recorded | AlreadyRecorded:
    """Append ``result`` to its history (``memgate check --record``, ``memgate baseline
    record``), keeping the last ``keep`` runs: what was done (``label``: what the run is,
    as the line says)."""
    from gate.summary import summarize

    key = result.scenario.key
    run_id = summarize(result).run_id
    before = store.load(key)
    had = [run.run_id for run in before.runs] if before is not None else []
    history = store.record(result, keep=keep)
    if run_id in had:
        return AlreadyRecorded(run_id, store.path(key), len(history.runs), label)
    dropped = len(had) + 1 - len(history.runs)
    return Recorded(run_id, store.path(key), len(history.runs), dropped, label)


def judge(
    result: RunResult,
    store: BaselineStore,
    budgets: BudgetSpec,
    fail_on: Outcome,
    *,
    result_path: Path | None = None,
) -> tuple[Report, ExitCode]:
    """Compare ``result`` with its history (less the run itself, if it was recorded) and
    with ``budgets``: the report and its exit code."""
    from gate.report.report import Report
    from gate.scenario import run_settings
    from gate.summary import summarize
    from gate.verdict import decide

    current = summarize(result)
    history = store.load(result.scenario.key)
    if history is not None:
        history = history.without_run(current.run_id)
    # The environment's parts that must match ([gate] env_match), as the run was set.
    _, gate = run_settings(result.settings or {})
    decision = decide(current, history, budgets, env_match=gate.env_match)
    report = Report(result, current, decision, str(result_path) if result_path else None)
    return report, decision.verdict.exit_code(fail_on)


def judge_file(
    result: RunResult, store: BaselineStore, fail_on: Outcome, *, result_path: Path | None = None
) -> tuple[Report, ExitCode]:
    """:func:`judge` a result read from a file, with the budgets it was run with."""
    from gate.scenario import run_settings

    budgets, _ = run_settings(result.settings)
    return judge(result, store, budgets, fail_on, result_path=result_path)


REPORT_FILES = ((Format.JSON, REPORT_JSON), (Format.HTML, REPORT_HTML))


def write_reports(report: Report, folder: Path) -> dict[Format, Path]:
    """The JSON and HTML reports beside the run's ``result.json``."""
    from gate._files import write_atomic

    written = {}
    for fmt, name in REPORT_FILES:
        write_atomic(folder / name, render(report, fmt).encode())
        written[fmt] = folder / name
    return written
