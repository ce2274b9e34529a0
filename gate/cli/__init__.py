"""The ``memgate`` command: arguments in, files written, exit code out.

Each subcommand is a class in ``commands`` whose docstring is its help; ``options``
types argv into what the check takes. ``main`` returns the exit code (see
``gate.errors.ExitCode``) and never lets a traceback reach the user for an error memgate
can name. No other module of memgate sees argv.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import NoReturn, Protocol

from gate.cli.commands import (
    BaselineCommand,
    CheckCommand,
    CommentCommand,
    CompareCommand,
    InitCommand,
    MergeCommand,
    ReportCommand,
    RunCommand,
)
from gate.console import say_error
from gate.errors import ExitCode, MemgateError, error_text


class Command(Protocol):
    def prepare_parser(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, Command] = {
    "run": RunCommand(),
    "check": CheckCommand(),
    "compare": CompareCommand(),
    "baseline": BaselineCommand(),
    "report": ReportCommand(),
    "merge": MergeCommand(),
    "comment": CommentCommand(),
    "init": InitCommand(),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line like every other error (the usage itself
    is in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        say_error(f"{self.prog}: error: {message}")
        sys.exit(ExitCode.BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from gate import __version__

    parser = _Parser(
        prog="memgate",
        description="Memory regression gate: run a service with memgate's heap sampler (or"
        " memray) under a Locust load and measure how its memory grows with requests served.",
    )
    parser.add_argument("--version", action="version", version=f"memgate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        doc = (command.__doc__ or "").strip()
        summary = " ".join(doc.split("\n\n")[0].split())  # its first paragraph, whole
        sub = subparsers.add_parser(name, help=summary, description=doc)
        command.prepare_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from gate import actions

    parser = build_parser()
    args = parser.parse_args(argv)
    # A CI cancel sends SIGTERM: unwind like Ctrl-C so the service and load are stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        # Inside Actions, nothing memgate prints is read as a workflow command, but for
        # the annotations it emits on purpose (gate.actions.emit_commands).
        with actions.commands_paused():
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
