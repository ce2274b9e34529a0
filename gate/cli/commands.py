"""The subcommands: each a class whose docstring is its help."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gate.cli.options import (
    add_baseline_options,
    add_fail_on,
    add_run_options,
    run_options,
    whole_number,
)
from gate.console import recording_line, say, say_error, width
from gate.errors import ExitCode, InputError, MemgateError, error_text
from gate.outcome import Outcome
from gate.report.formats import MERGE_FORMATS, Format

if TYPE_CHECKING:
    from gate.check import Checked


class RunCommand:
    """Run a scenario: the service sampled (or traced by memray), driven by Locust; write
    OUT/result.json (OUT/SERVICE/result.json for each of several services).

    The previous run's folder is kept whole in OUT.previous (the one before it removed).
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("scenario", type=Path, help="scenario file (TOML)")
        parser.add_argument(
            "--out",
            type=Path,
            help="folder for result.json, the capture and the logs"
            " (default: memgate-out/SCENARIO_NAME; the previous run's goes to OUT.previous)",
        )
        add_run_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate import check
        from gate.console import TerminalObserver

        options = run_options(args)
        scenario = check.open_scenario(args.scenario, options)
        with TerminalObserver(scenario, quiet=args.quiet) as observer:
            ran = check.run(scenario, options, observer)
        for one in ran:  # what to do with it
            html = one.path.with_name("report.html")
            say(f"its report: memgate report {one.path} --format html --out {html}")
        say(f"next: memgate check {args.scenario} --record (judged, and its history started)")
        return ExitCode.PASS


class CheckCommand:
    """Run scenarios and compare each with its baseline history: pass, flag or fail.

    With --record, a run that did not fail is appended to the history (main-branch
    builds); a failing run enters the history only through `memgate baseline accept`.
    Each service's run says in one line what was recorded, or why nothing was. A
    scenario's previous run is kept whole in OUT/NAME.previous (the one before it removed).
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
            help="append runs that did not fail to the baseline history (one line each says"
            " what was recorded)",
        )
        add_baseline_options(parser)
        add_fail_on(parser)
        add_run_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate import actions, check
        from gate.console import TerminalObserver

        options = run_options(args)
        root = check.out_root(options)
        codes: list[int] = []
        done: list[check.Checked] = []
        errors: list[tuple[str, str]] = []
        if options.record and actions.in_pull_request():
            why = "--record is refused in a pull request's workflow: it must not write baselines"
            say_error(f"memgate: error: {why}")
            publish([], [("--record", why)], root)
            return int(ExitCode.BAD_INPUT)
        taken: dict[str, Path] = {}
        for path in args.scenarios:
            try:
                scenario = check.open_check(path, options, taken)
                taken[scenario.name] = path
                with TerminalObserver(scenario, quiet=args.quiet) as observer:
                    checked = check.check_scenario(scenario, options, observer)
            except MemgateError as exc:
                say_error(f"memgate: error: {error_text(exc)}")
                if options.record:
                    say(f"not recorded: {path}: its check could not be done (the error above)")
                errors.append((str(path), error_text(exc)))
                codes.append(int(exc.exit_code))
                continue
            done += checked.checked
            codes.append(checked.exit_code)
        if actions.in_actions():
            publish(done, errors, root)
        return int(ExitCode.worst(codes))


def publish(done: list[Checked], errors: list[tuple[str, str]], root: Path) -> None:
    """Inside GitHub Actions: annotations, one job summary, and the step outputs."""
    from gate import actions
    from gate.report.github import Annotation, annotate, render_annotations
    from gate.report.markdown import render_markdown
    from gate.report.markdown_text import md

    workspace = actions.workspace() or os.path.realpath(os.getcwd())
    notes = [a for c in done for a in annotate(c.report, workspace)]
    notes += [Annotation("error", "memgate: error", f"{path}: {why}") for path, why in errors]
    summary = [
        render_markdown(c.report)
        + (f"\n{md(recording_line(c.recording))}\n" if c.recording else "")
        for c in done
    ]
    summary += [f"## ❗ memgate {md(path)}: ERROR\n\n{md(why)}\n" for path, why in errors]
    # The worst verdict; "error" when any scenario could not be checked (or none was).
    verdicts = [c.report.decision.verdict for c in done]
    verdict = Outcome.worst([*verdicts, *[Outcome.ERROR] * bool(errors)])
    outputs = {
        "verdict": verdict.value,
        "out-dir": str(root),
        "json-report": "\n".join(str(c.files[Format.JSON]) for c in done),
        "html-report": "\n".join(str(c.files[Format.HTML]) for c in done),
    }
    for problem in actions.publish(render_annotations(notes), "\n".join(summary), outputs):
        say_error(f"memgate: warning: {problem}")


class CompareCommand:
    """Compare a result.json with its baseline history, offline (no load)."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("result", type=Path, help="a result.json written by memgate")
        add_baseline_options(parser)
        add_fail_on(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate.baseline import BaselineStore
        from gate.check import judge_file
        from gate.report.parts import dependency_notes
        from gate.report.terminal import render_decision
        from gate.result import read_result

        result = read_result(args.result)
        report, code = judge_file(result, BaselineStore(args.baselines), args.fail_on)
        changed = dependency_notes(report)
        say(
            render_decision(result.scenario.key, report.decision, width=width(), changed=changed),
            end="",
        )
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
            help="terminal (default), json, markdown (job summary), github (annotations),"
            " html (one self-contained file), bmf (Bencher Metric Format) or benchmark"
            " (github-action-benchmark's customSmallerIsBetter)",
        )
        parser.add_argument("--out", type=Path, help="write the report to this file")
        parser.add_argument(
            "--workspace",
            help="annotations' files are relative to this folder"
            " (default: GITHUB_WORKSPACE in Actions, else the current folder)",
        )
        add_baseline_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate import actions
        from gate._files import write_atomic
        from gate.baseline import BaselineStore
        from gate.check import judge_file
        from gate.report.formats import render
        from gate.result import read_result

        result = read_result(args.result)
        store = BaselineStore(args.baselines)
        report, _ = judge_file(result, store, Outcome.FAIL, result_path=args.result)
        workspace = os.path.realpath(args.workspace) if args.workspace else actions.workspace()
        text = render(report, args.format, workspace=workspace, width=width())
        if args.out is None and args.format is Format.GITHUB:
            actions.emit_commands(text)  # meant to be read as commands
        elif args.out is None:
            say(text, end="")
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
        add_fail_on(parser)

    def run(self, args: argparse.Namespace) -> int:
        from gate import actions
        from gate._files import write_atomic
        from gate.merge import collect
        from gate.report.formats import render_merged
        from gate.report.markdown import render_merged_markdown

        merged = collect(args.files)
        for bad in merged.errors:
            say_error(f"memgate: error: {bad}")
        verdict = merged.verdict
        code = int(verdict.exit_code(args.fail_on))
        text = render_merged(merged, args.format, width=width())
        try:
            if args.out is not None:
                write_atomic(args.out, text.encode())
            elif args.format is Format.GITHUB:
                actions.emit_commands(text)  # meant to be read as commands
            else:
                say(text, end="")
        except MemgateError as exc:
            say_error(f"memgate: error: {exc}")
            code, verdict = int(ExitCode.BAD_INPUT), Outcome.ERROR
        if actions.in_actions():
            published = {"verdict": verdict.value}
            for problem in actions.publish("", render_merged_markdown(merged), published):
                say_error(f"memgate: warning: {problem}")
        return code


class CommentCommand:
    """Write the checks' summary as one comment on the pull request, updated on each push.

    Each FILE is a report.json or a folder searched for report.json files, as merge reads
    them; their summary is the comment. Inside GitHub Actions, for a pull request's
    event only: the pull request comes from the event, the token from GITHUB_TOKEN, and
    the job needs permissions: pull-requests: write. The comment is found again by a
    marker it carries and updated, never added twice.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("files", type=Path, nargs="+", metavar="FILE")

    def run(self, args: argparse.Namespace) -> int:
        from gate import actions
        from gate.github_api import upsert_comment
        from gate.merge import collect
        from gate.report.markdown import render_merged_markdown

        target = actions.pull_request()
        merged = collect(args.files)
        for bad in merged.errors:
            say_error(f"memgate: error: {bad}")
        if not merged.reports:
            raise InputError("no report.json to comment with: run memgate check first")
        body = render_merged_markdown(merged)
        how, _ = upsert_comment(target.api, target.repository, target.number, target.token, body)
        say(f"memgate comment: {how} the comment on pull request #{target.number}")
        return ExitCode.PASS


class BaselineCommand:
    """Keep baseline histories: record a run, show a history, accept a regression."""

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        record = actions.add_parser("record", help="append a result to its scenario's history")
        record.add_argument("result", type=Path)
        record.add_argument(
            "--keep",
            type=whole_number(2),
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
            add_baseline_options(sub)

    def run(self, args: argparse.Namespace) -> int:
        from gate.baseline import BaselineStore
        from gate.provenance import who
        from gate.report.terminal import render_history
        from gate.result import read_result
        from gate.scenario import run_settings

        store = BaselineStore(args.baselines)
        if args.action == "show":
            name = Path(args.scenario).stem if args.scenario.endswith(".toml") else args.scenario
            keys = [name] * store.path(name).exists() + store.services_of(name) or [name]
            for key in keys:
                history = store.load(key)
                if history is None:
                    raise InputError(f"no baseline for scenario {key!r} in {args.baselines}")
                say(render_history(history, store.audit(key), width=width()), end="")
            return ExitCode.PASS
        result = read_result(args.result)
        keep = (
            args.keep
            if args.action == "record" and args.keep
            else run_settings(result.settings)[1].keep
        )
        if args.action == "record":
            from gate.check import FailedNotRecorded, judge_file, record

            # As check --record: a run that fails its own check (against the history, and
            # the budgets it was run with) enters the history only through accept.
            _, code = judge_file(result, store, Outcome.FAIL)
            if code is ExitCode.REGRESSION:
                refused = FailedNotRecorded(
                    store.path(result.scenario.key), args.result, args.baselines
                )
                say(recording_line(refused))
                return ExitCode.REGRESSION
            say(recording_line(record(result, store, keep=keep)))
        else:
            history = store.accept(result, reason=args.reason, who=who(Path.cwd()), keep=keep)
            say(
                f"accepted {history.reference} as the reference of {history.scenario};"
                f" audit entry in {store.audit_path(history.scenario)}"
            )
        return ExitCode.PASS


class InitCommand:
    """Write a first scenario and a plain locustfile for the service a command starts.

    The command (after --, with {port} where its port goes) runs once in the current
    folder, without memray, on a free port of 127.0.0.1; its health path is the first of
    /health, /healthz, /ready, /status and / that answers 2xx (or --health), and each
    GET endpoint without path parameters of its OpenAPI document, if it serves one,
    becomes a task. It is stopped before anything is written; nothing is written over.
    """

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--name", default="service", help="the scenario's name (default: service)"
        )
        parser.add_argument(
            "--out", type=Path, default=Path("."), help="folder for the two files (default: .)"
        )
        parser.add_argument("--health", help="the service's health path (default: found)")
        parser.add_argument(
            "service_command",
            nargs=argparse.REMAINDER,
            metavar="-- COMMAND",
            help="what starts the service",
        )

    def run(self, args: argparse.Namespace) -> int:
        from gate.scaffold import init

        command = list(args.service_command)
        if command[:1] == ["--"]:
            command = command[1:]
        scenario, locustfile = init(command, name=args.name, out=args.out, health=args.health)
        say(f"wrote {scenario} and {locustfile}; run it with: memgate run {scenario}")
        return ExitCode.PASS
