"""The options commands share, and argv's values typed (argparse's ``type=`` functions)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from gate.check import DEFAULT_BASELINES, RunOptions, parse_env_pair
from gate.outcome import FAIL_ON, Outcome
from gate.units import seconds


def env_pair(text: str) -> tuple[str, str]:
    try:
        return parse_env_pair(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value

    return parse


def _positive_seconds(text: str) -> float:
    try:
        value = seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def run_options(args: argparse.Namespace) -> RunOptions:
    """The typed options of a command's arguments (those it has)."""
    return RunOptions(
        env=tuple(getattr(args, "env", ())),
        requests=getattr(args, "requests", None),
        duration=getattr(args, "duration", None),
        warmup=getattr(args, "warmup", None),
        capture=getattr(args, "capture", None),
        flamegraph=getattr(args, "flamegraph", False),
        out=getattr(args, "out", None),
        record=getattr(args, "record", False),
        fail_on=getattr(args, "fail_on", Outcome.FAIL),
        baselines=getattr(args, "baselines", DEFAULT_BASELINES),
    )


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
    parser.add_argument("--requests", type=whole_number(1), help="measured requests after warm-up")
    parser.add_argument(
        "--duration",
        type=_positive_seconds,
        help="measured time after warm-up: seconds, or 30s, 5m, 1h",
    )
    parser.add_argument("--warmup", type=whole_number(0), help="warm-up requests")
    parser.add_argument(
        "--capture",
        choices=("live", "file", "counters", "sampled", "auto"),
        help="count the heap and sample one allocation in 4 KiB to name the lines (sampled:"
        " the default, at about 0.8x the service's speed), or trace every allocation with"
        " memray and read its records live (no file; native frames, flame graphs), or write"
        " memray's capture file and read it after the load (for memray's own reporters), or"
        " trace nothing and read the allocators' counters (near full speed, no sites), or"
        " count and, when the heap grew, run again traced to name the lines (auto);"
        " default: the scenario's profile",
    )
    parser.add_argument(
        "--flamegraph",
        action="store_true",
        help="write memray's flame graph of the allocations alive at the end of the load"
        " (flamegraph.html in the run's folder; live capture only)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def add_baseline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baselines",
        type=Path,
        default=DEFAULT_BASELINES,
        help="folder of baseline histories (default: baselines)",
    )


def FailOn(text: str) -> Outcome:
    """``--fail-on``'s value: an outcome that fails the build (argparse names the type by
    this function in its error, ``invalid FailOn value``)."""
    outcome = Outcome(text)
    if outcome not in FAIL_ON:
        raise ValueError(text)
    return outcome


def add_fail_on(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fail-on",
        type=FailOn,
        choices=FAIL_ON,
        default=Outcome.FAIL,
        help="'flag' also fails the build on flags (default: only on failures)",
    )
