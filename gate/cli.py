"""The ``memgate`` command: arguments in, files written, exit code out.

Each subcommand is a class whose docstring is its help; ``main`` returns the exit code
(see ``gate.errors.ExitCode``) and never lets a traceback reach the user for an error
memgate can name.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gate.errors import ExitCode, MemgateError

if TYPE_CHECKING:
    from gate.scenario import Scenario


class Command(Protocol):
    def prepare_parser(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _env_pair(text: str) -> tuple[str, str]:
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
    """Run a scenario: the service under memray, driven by Locust; write OUT/result.json."""

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
        from gate.report.terminal import render_run
        from gate.result import write_result
        from gate.runner import run_scenario
        from gate.scenario import load_scenario

        scenario = load_scenario(args.scenario).with_overrides(
            env=dict(args.env),
            requests=args.requests,
            duration=args.duration,
            warmup=args.warmup,
        )
        out_dir = args.out or Path("memgate-out") / scenario.name
        with _TerminalObserver(scenario, quiet=args.quiet) as observer:
            result = run_scenario(scenario, out_dir, observer)
        write_result(result, out_dir / "result.json")
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 160
        print(render_run(result, width=max(width, 100)), end="")
        print(f"result: {out_dir / 'result.json'}")
        return ExitCode.PASS


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs a scenario."""
    parser.add_argument(
        "--env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an environment variable for the service (repeatable)",
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
        if name == "reading the capture":
            # memray draws its own progress bars while it reads; ours steps aside.
            self._progress.stop()
        self._progress.update(self._task, description=name)

    def load_progress(self, phase: str, requests: int, failures: int) -> None:
        self._progress.update(
            self._task, description=f"load ({phase})", completed=requests, failures=failures
        )


COMMANDS: dict[str, Command] = {
    "run": RunCommand(),
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
    parser = build_parser()
    args = parser.parse_args(argv)
    # A CI cancel sends SIGTERM: unwind like Ctrl-C so the service and load are stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(COMMANDS[args.command].run(args))
    except MemgateError as exc:
        print(f"memgate: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("memgate: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in memgate: still one line, and never a pass
        if os.environ.get("MEMGATE_DEBUG"):
            raise
        print(
            f"memgate: internal error: {type(exc).__name__}: {exc}"
            " (set MEMGATE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return int(ExitCode.RUN_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
