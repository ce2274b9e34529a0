"""The ``memgate`` command: arguments in, files written, exit code out.

Each subcommand is a class whose docstring is its help; ``main`` returns the exit code
(see ``gate.errors.ExitCode``) and never lets a traceback reach the user for an error
memgate can name.
"""

from __future__ import annotations

import argparse
import enum
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gate.errors import ExitCode, InputError, MemgateError

if TYPE_CHECKING:
    from gate.baseline import BaselineStore
    from gate.merge import Merged
    from gate.model import RunResult
    from gate.report import Report
    from gate.scenario import BudgetSpec, GateSpec, Scenario


class Command(Protocol):
    def prepare_parser(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


class RunCommand:
    """Run a scenario: the service under memray, driven by Locust; write OUT/result.json
    (OUT/SERVICE/result.json for each of several services)."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("scenario", type=Path, help="scenario file (TOML)")
        parser.add_argument(
            "--out",
            type=Path,
            help="folder for result.json, the capture and the logs"
            " (default: memgate-out/SCENARIO_NAME)",
        )
        add_run_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        _run_one(args.scenario, args, args.out)
        return ExitCode.PASS


def _run_one(
    path: Path, args: argparse.Namespace, out: Path | None
) -> list[tuple[RunResult, Path]]:
    """Run one scenario with the run options in ``args``; write and print each of its
    services' results (one for a one-service scenario)."""
    from gate.report.terminal import render_run
    from gate.result import write_result
    from gate.runner import run_services
    from gate.scenario import load_scenario

    scenario = load_scenario(path).with_overrides(
        env=dict(args.env),
        requests=args.requests,
        duration=args.duration,
        warmup=args.warmup,
    )
    out_dir = out or Path("memgate-out") / scenario.name
    with _TerminalObserver(scenario, quiet=args.quiet) as observer:
        results = run_services(scenario, out_dir, observer)
    written = []
    for result in results:
        service = result.scenario.service
        result_path = (out_dir / service if service else out_dir) / "result.json"
        write_result(result, result_path)
        print(render_run(result, width=_width()), end="")
        print(f"result: {result_path}")
        written.append((result, result_path))
    return written


def _width() -> int:
    return max(shutil.get_terminal_size().columns if sys.stdout.isatty() else 160, 100)


def _add_baseline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baselines",
        type=Path,
        default=Path("baselines"),
        help="folder of baseline histories (default: baselines)",
    )


def _add_fail_on(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fail-on",
        type=FailOn,
        choices=list(FailOn),
        default=FailOn.FAIL,
        help="'flag' also fails the build on flags (default: only on failures)",
    )


class FailOn(enum.StrEnum):
    FAIL = "fail"
    FLAG = "flag"


class Format(enum.StrEnum):
    TERMINAL = "terminal"
    JSON = "json"
    MARKDOWN = "markdown"
    GITHUB = "github"
    HTML = "html"


def _decide(
    result: RunResult,
    store: BaselineStore,
    fail_on: FailOn,
    *,
    result_path: Path | None = None,
    quiet: bool = False,
) -> tuple[Report, int]:
    """Compare ``result`` with its history (less the run itself, if it was recorded);
    print the findings unless ``quiet``; the report and the exit code."""
    import dataclasses

    from gate.baseline import summarize
    from gate.report import Report
    from gate.report.terminal import render_decision
    from gate.verdict import decide

    current = summarize(result)
    history = store.load(result.scenario.key)
    if history is not None:
        # A run already recorded is not compared with itself, unless it is the reference:
        # an accepted run is where the history now starts.
        runs = tuple(
            r for r in history.runs if r.run_id != current.run_id or r.run_id == history.reference
        )
        history = dataclasses.replace(history, runs=runs)
    decision = decide(current, history, _settings(result)[0])
    if not quiet:
        print(render_decision(result.scenario.key, decision, width=_width()), end="")
    report = Report(result, current, decision, str(result_path) if result_path else None)
    return report, _exit_code(decision.verdict, fail_on)


def _exit_code(verdict: str, fail_on: FailOn) -> int:
    """A verdict's exit code: a failure is a regression, and so is a flag with
    ``--fail-on flag``; anything else passes."""
    failed = verdict == "fail" or (verdict == "flag" and fail_on is FailOn.FLAG)
    return int(ExitCode.REGRESSION if failed else ExitCode.PASS)


def _settings(result: RunResult) -> tuple[BudgetSpec, GateSpec]:
    """The budgets and gate settings a result was run with, validated."""
    from gate.scenario import run_settings

    return run_settings(result.settings)


def _worst(codes: list[int]) -> int:
    """One exit code for several scenarios: bad input, then a failed run, then a
    regression, then a pass."""
    for code in (ExitCode.BAD_INPUT, ExitCode.RUN_FAILED, ExitCode.REGRESSION):
        if code in codes:
            return int(code)
    return int(ExitCode.PASS)


class CheckCommand:
    """Run scenarios and compare each with its baseline history: pass, flag or fail.

    With --record, a run that did not fail is appended to the history (main-branch
    builds); a failing run enters the history only through `memgate baseline accept`.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("scenarios", type=Path, nargs="+", metavar="SCENARIO")
        parser.add_argument(
            "--out",
            type=Path,
            help="folder for the runs' outputs, one subfolder per scenario (default: memgate-out)",
        )
        parser.add_argument(
            "--record",
            action="store_true",
            help="append runs that did not fail to the baseline history",
        )
        _add_baseline_options(parser)
        _add_fail_on(parser)
        add_run_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate import github
        from gate.baseline import BaselineStore

        store = BaselineStore(args.baselines)
        root = (args.out or Path("memgate-out")).absolute()
        codes: list[int] = []
        done: list[tuple[Report, dict[Format, Path]]] = []
        errors: list[tuple[str, str]] = []
        if args.record and github.in_pull_request():
            why = "--record is refused in a pull request's workflow: it must not write baselines"
            say_error(f"memgate: error: {why}")
            _publish([], [("--record", why)], root)
            return int(ExitCode.BAD_INPUT)
        for path in args.scenarios:
            try:
                for report, code, written in check_scenario(path, args, store, root):
                    done.append((report, written))
                    codes.append(code)
            except MemgateError as exc:
                say_error(f"memgate: error: {error_text(exc)}")
                errors.append((str(path), error_text(exc)))
                codes.append(int(exc.exit_code))
        if github.in_actions():
            _publish(done, errors, root)
        return _worst(codes)


def check_scenario(
    path: Path, args: argparse.Namespace, store: BaselineStore, root: Path
) -> list[tuple[Report, int, dict[Format, Path]]]:
    """Run one scenario into ``root/NAME`` with the run options in ``args``, compare each
    of its services with its own history, write their reports, record each that did not
    fail if ``args.record``; print what happened. Per service: the report, the exit code
    and the report files."""
    from gate.scenario import load_scenario
    from gate.verdict import Verdict

    scenario = load_scenario(path)
    for member in scenario.members():
        store.load(member.key)  # a broken baseline is bad input: say so before the run
    checked = []
    for result, result_path in _run_one(path, args, root / scenario.name):
        report, code = _decide(result, store, args.fail_on, result_path=result_path)
        written = _write_reports(report, result_path.parent)
        print("reports: " + ", ".join(str(p) for p in written.values()))
        if args.record and report.decision.verdict is not Verdict.FAIL:
            key = result.scenario.key
            history = store.record(result, keep=_settings(result)[1].keep)
            print(f"recorded in {store.path(key)} ({len(history.runs)} runs)")
        checked.append((report, code, written))
    if len(checked) > 1:
        from gate.merge import Outcome, worst

        verdict = worst(Outcome(report.decision.verdict.value) for report, _, _ in checked)
        each = ", ".join(
            f"{report.result.scenario.service} {report.decision.verdict.value}"
            for report, _, _ in checked
        )
        print(f"memgate check: {scenario.name}: {verdict.value.upper()} ({each})")
    return checked


def _write_reports(report: Report, folder: Path) -> dict[Format, Path]:
    """The JSON and HTML reports beside the run's result.json."""
    from gate._files import write_atomic

    written = {}
    for fmt, name in ((Format.JSON, "report.json"), (Format.HTML, "report.html")):
        write_atomic(folder / name, render(report, fmt).encode())
        written[fmt] = folder / name
    return written


def _publish(
    done: list[tuple[Report, dict[Format, Path]]], errors: list[tuple[str, str]], root: Path
) -> None:
    """Inside GitHub Actions: annotations, one job summary, and the step outputs."""
    from gate import github
    from gate.merge import Outcome, worst
    from gate.report.github import Annotation, annotate, render_annotations
    from gate.report.markdown import md, render_markdown

    workspace = github.workspace() or os.path.realpath(os.getcwd())
    notes = [a for report, _ in done for a in annotate(report, workspace)]
    notes += [Annotation("error", "memgate: error", f"{path}: {why}") for path, why in errors]
    summary = [render_markdown(report) for report, _ in done]
    summary += [f"## ❗ memgate {md(path)}: ERROR\n\n{md(why)}\n" for path, why in errors]
    # The worst verdict; "error" when any scenario could not be checked (or none was).
    verdicts = [Outcome(report.decision.verdict.value) for report, _ in done]
    verdict = worst([*verdicts, *[Outcome.ERROR] * bool(errors)])
    outputs = {
        "verdict": verdict.value,
        "out-dir": str(root),
        "json-report": "\n".join(str(w[Format.JSON]) for _, w in done),
        "html-report": "\n".join(str(w[Format.HTML]) for _, w in done),
    }
    github.publish(render_annotations(notes), "\n".join(summary), outputs)


def render(report: Report, fmt: Format, workspace: str | None = None) -> str:
    """``report`` in one format (the reporters are imported only when used)."""
    if fmt is Format.TERMINAL:
        from gate.report.terminal import render_decision, render_run

        return render_run(report.result, width=_width()) + render_decision(
            report.result.scenario.key, report.decision, width=_width()
        )
    if fmt is Format.JSON:
        from gate.report.json import render_json

        return render_json(report)
    if fmt is Format.MARKDOWN:
        from gate.report.markdown import render_markdown

        return render_markdown(report)
    if fmt is Format.GITHUB:
        from gate.report.github import render_github

        return render_github(report, workspace or os.path.realpath(os.getcwd()))
    from gate.report.html import render_html

    return render_html(report)


class CompareCommand:
    """Compare a result.json with its baseline history, offline (no load)."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("result", type=Path, help="a result.json written by memgate")
        _add_baseline_options(parser)
        _add_fail_on(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate.baseline import BaselineStore
        from gate.result import read_result

        result = read_result(args.result)
        _, code = _decide(result, BaselineStore(args.baselines), args.fail_on)
        return code


class ReportCommand:
    """Render a result.json and its verdict against the baselines in one format.

    The run is compared with its history as `memgate compare` does (leaving the run
    itself out if it was recorded); the report goes to standard output or --out.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("result", type=Path, help="a result.json written by memgate")
        parser.add_argument(
            "--format",
            type=Format,
            choices=list(Format),
            default=Format.TERMINAL,
            help="terminal (default), json, markdown (job summary), github (annotations)"
            " or html (one self-contained file)",
        )
        parser.add_argument("--out", type=Path, help="write the report to this file")
        parser.add_argument(
            "--workspace",
            help="annotations' files are relative to this folder"
            " (default: GITHUB_WORKSPACE in Actions, else the current folder)",
        )
        _add_baseline_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate import github
        from gate._files import write_atomic
        from gate.baseline import BaselineStore
        from gate.result import read_result

        result = read_result(args.result)
        report, _ = _decide(
            result, BaselineStore(args.baselines), FailOn.FAIL, result_path=args.result, quiet=True
        )
        workspace = os.path.realpath(args.workspace) if args.workspace else github.workspace()
        text = render(report, args.format, workspace)
        if args.out is None and args.format is Format.GITHUB:
            github.emit_commands(text)  # meant to be read as commands
        elif args.out is None:
            print(text, end="")
        else:
            write_atomic(args.out, text.encode())
        return ExitCode.PASS


class MergeCommand:
    """Merge the report.json files of several checks (a CI matrix) into one summary and
    one verdict.

    Each FILE is a report.json that `memgate check` wrote beside a result.json, or a
    folder searched for report.json files (downloaded CI artifacts). The verdict is the
    worst: error (an input that could not be merged, or none at all), fail, flag, pass.
    Two reports of one scenario in one environment are an error. Inside GitHub Actions
    the Markdown summary is appended to the job summary and the output `verdict` set.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "files", type=Path, nargs="+", metavar="FILE", help="report.json files or folders"
        )
        parser.add_argument(
            "--format",
            type=Format,
            choices=MERGE_FORMATS,
            default=Format.TERMINAL,
            help="terminal (default), markdown (job summary), json or github (annotations)",
        )
        parser.add_argument("--out", type=Path, help="write the summary to this file")
        _add_fail_on(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate import github
        from gate._files import write_atomic
        from gate.merge import Outcome, collect
        from gate.report.markdown import render_merged_markdown

        merged = collect(args.files)
        for bad in merged.errors:
            say_error(f"memgate: error: {bad}")
        verdict = merged.verdict
        code = (
            int(ExitCode.BAD_INPUT)
            if verdict is Outcome.ERROR
            else _exit_code(verdict.value, args.fail_on)
        )
        text = render_merged(merged, args.format)
        try:
            if args.out is not None:
                write_atomic(args.out, text.encode())
            elif args.format is Format.GITHUB:
                github.emit_commands(text)  # meant to be read as commands
            else:
                print(text, end="")
        except MemgateError as exc:
            say_error(f"memgate: error: {exc}")
            code, verdict = int(ExitCode.BAD_INPUT), Outcome.ERROR
        if github.in_actions():
            github.publish("", render_merged_markdown(merged), {"verdict": verdict.value})
        return code


MERGE_FORMATS = [Format.TERMINAL, Format.MARKDOWN, Format.JSON, Format.GITHUB]


def render_merged(merged: Merged, fmt: Format) -> str:
    """Merged reports in one format (the reporters are imported only when used)."""
    if fmt is Format.TERMINAL:
        from gate.report.terminal import render_merged as terminal

        return terminal(merged, width=_width())
    if fmt is Format.MARKDOWN:
        from gate.report.markdown import render_merged_markdown

        return render_merged_markdown(merged)
    if fmt is Format.JSON:
        from gate.report.json import render_merged_json

        return render_merged_json(merged)
    if fmt is Format.GITHUB:
        from gate.report.github import render_merged_github

        return render_merged_github(merged)
    raise InputError(f"memgate merge has no {fmt.value} format")


class BaselineCommand:
    """Keep baseline histories: record a run, show a history, accept a regression."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        record = actions.add_parser("record", help="append a result to its scenario's history")
        record.add_argument("result", type=Path)
        record.add_argument(
            "--keep",
            type=_whole_number(2),
            help="runs kept (default: the scenario's gate.keep, 20)",
        )
        show = actions.add_parser(
            "show", help="print a scenario's history and audit log (each service's, if several)"
        )
        show.add_argument("scenario", help="scenario name, NAME/SERVICE, or the .toml file")
        accept = actions.add_parser(
            "accept",
            help="accept a regression: the result becomes the reference, with a reason",
        )
        accept.add_argument("result", type=Path)
        accept.add_argument("--reason", required=True, help="why this regression is accepted")
        for sub in (record, show, accept):
            _add_baseline_options(sub)

    def run(self, args: argparse.Namespace) -> int:
        from gate.baseline import BaselineStore
        from gate.provenance import who
        from gate.report.terminal import render_history
        from gate.result import read_result

        store = BaselineStore(args.baselines)
        if args.action == "show":
            name = Path(args.scenario).stem if args.scenario.endswith(".toml") else args.scenario
            keys = [name] * store.path(name).exists() + store.services_of(name) or [name]
            for key in keys:
                history = store.load(key)
                if history is None:
                    raise InputError(f"no baseline for scenario {key!r} in {args.baselines}")
                print(render_history(history, store.audit(key), width=_width()), end="")
            return ExitCode.PASS
        result = read_result(args.result)
        keep = args.keep if args.action == "record" and args.keep else _settings(result)[1].keep
        if args.action == "record":
            history = store.record(result, keep=keep)
            print(f"recorded in {store.path(history.scenario)} ({len(history.runs)} runs)")
        else:
            history = store.accept(result, reason=args.reason, who=who(Path.cwd()), keep=keep)
            print(
                f"accepted {history.reference} as the reference of {history.scenario};"
                f" audit entry in {store.audit_path(history.scenario)}"
            )
        return ExitCode.PASS


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs a scenario."""
    parser.add_argument(
        "--env",
        type=env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an environment variable for the service (every service, if several; repeatable)",
    )
    parser.add_argument("--requests", type=_whole_number(1), help="measured requests after warm-up")
    parser.add_argument("--duration", type=_positive_float, help="measured seconds after warm-up")
    parser.add_argument("--warmup", type=_whole_number(0), help="warm-up requests")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


class _TerminalObserver:
    """Progress on standard error while a scenario runs (nothing when not a terminal)."""

    def __init__(self, scenario: Scenario, *, quiet: bool) -> None:
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

    def __enter__(self) -> _TerminalObserver:
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


COMMANDS: dict[str, Command] = {
    "run": RunCommand(),
    "check": CheckCommand(),
    "compare": CompareCommand(),
    "baseline": BaselineCommand(),
    "report": ReportCommand(),
    "merge": MergeCommand(),
}


def build_parser() -> argparse.ArgumentParser:
    from gate import __version__

    parser = argparse.ArgumentParser(
        prog="memgate",
        description="Memory regression gate: run a service under memray with a Locust load"
        " and measure how its memory grows with requests served.",
    )
    parser.add_argument("--version", action="version", version=f"memgate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        doc = (command.__doc__ or "").strip()
        sub = subparsers.add_parser(name, help=doc.splitlines()[0], description=doc)
        command.prepare_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from gate import github

    parser = build_parser()
    args = parser.parse_args(argv)
    # A CI cancel sends SIGTERM: unwind like Ctrl-C so the service and load are stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        # Inside Actions, nothing memgate prints is read as a workflow command, but for
        # the annotations it emits on purpose (gate.github.emit_commands).
        with github.commands_paused():
            return _run_command(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_command(args: argparse.Namespace) -> int:
    try:
        return int(COMMANDS[args.command].run(args))
    except MemgateError as exc:
        say_error(f"memgate: error: {error_text(exc)}")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        say_error("memgate: interrupted")
        return 130
    except Exception as exc:  # a bug in memgate: still one line, and never a pass
        if os.environ.get("MEMGATE_DEBUG"):
            raise
        say_error(
            f"memgate: internal error: {type(exc).__name__}: {exc}"
            " (set MEMGATE_DEBUG=1 for the traceback)"
        )
        return int(ExitCode.RUN_FAILED)


def error_text(exc: MemgateError) -> str:
    """The error's line, pointing at what a failed run kept."""
    kept = getattr(exc, "kept", None)
    return f"{exc}; what the run saw is in {kept}" if kept else str(exc)


def say_error(line: str) -> None:
    """One line on standard error; on standard output inside Actions, where the runner
    reads the two streams apart, so that the pause of workflow commands covers it."""
    from gate import github

    print(one_line(line), file=sys.stdout if github.in_actions() else sys.stderr, flush=True)


_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(text: str) -> str:
    """``text`` with every character Python splits lines at written as an escape: a
    file name or a key read from a file may hold a line break."""
    return text.translate(_LINE_BREAKS)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
