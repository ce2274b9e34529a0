"""The summary ``memgate run`` prints: load, shape, curves, capture and top sites."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table

from gate.model import CurveShape, RunResult, Trend

TOP_SITES = 5
MIN_CONFIDENCE = 0.5
"""Sites listed must grow with an interval above zero and at least this confidence."""


def size(num: float) -> str:
    """Bytes in binary units, signed when negative: ``1.5 MiB``, ``-512 B``."""
    sign = "-" if num < 0 else ""
    value = abs(float(num))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "B":
                return f"{sign}{value:.1f} B" if 0 < value < 10 else f"{sign}{value:.0f} B"
            return f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def rate(trend: Trend) -> str:
    """``256.7 B/request [256.0, 257.5]``: the slope and its interval."""
    return f"{_num(trend.slope)} B/request [{_num(trend.low)}, {_num(trend.high)}]"


def _num(value: float) -> str:
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def render_run(result: RunResult, *, width: int = 100) -> str:
    """The run summary as plain text."""
    load = result.load
    analysis = result.analysis
    points = result.curve.points
    steady = points[analysis.steady.index]
    end = points[-1]

    summary = Table(box=box.SIMPLE, show_header=False, title=f"memgate run: {result.scenario.name}")
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row(
        "load",
        f"{load.requests:,} requests ({load.warmup_requests:,} warm-up,"
        f" {load.measured_requests:,} measured), {load.failures:,} failed;"
        f" {load.requests_per_second:,.0f} req/s measured; stopped by {load.stop_reason}",
    )
    summary.add_row("shape", f"{analysis.shape.value.upper()}")
    summary.add_row("steady", f"from {steady.requests:,.0f} requests: {analysis.steady.reason}")
    for name, shape, before, after in (
        ("heap", analysis.heap, steady.heap, end.heap),
        ("rss", analysis.rss, steady.rss, end.rss),
    ):
        summary.add_row(name, _curve_line(shape, before, after))
    summary.add_row(
        "capture",
        f"{result.capture.file}: {size(result.capture.bytes)}, {result.capture.snapshots:,}"
        f" snapshots, read in {result.capture.read_seconds:.1f} s",
    )

    sites = Table(box=box.SIMPLE, title="allocation sites most likely to be leaking")
    sites.add_column("#", justify="right")
    sites.add_column("growth [95% interval]", justify="right", no_wrap=True)
    sites.add_column("confidence", justify="right")
    sites.add_column("live at end", justify="right")
    sites.add_column("where", overflow="fold")
    growing = [s for s in result.sites if s.trend.low > 0 and s.confidence >= MIN_CONFIDENCE]
    growing = growing[:TOP_SITES]
    if not growing:
        sites.caption = "no allocation site grew steadily through the steady state"
    for rank, site in enumerate(growing, start=1):
        frame = site.user_frame or (site.stack[0] if site.stack else None)
        where = f"{frame.file}:{frame.line} in {frame.function}" if frame else "(no Python frame)"
        if site.user_frame is None and frame is not None:
            where += " (not user code)"
        sites.add_row(
            str(rank), rate(site.trend), f"{site.confidence:.2f}", size(site.live_bytes_end), where
        )

    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False)
    console.print(summary)
    console.print(sites)
    return out.getvalue()


def _curve_line(shape: CurveShape, before: int, after: int) -> str:
    return (
        f"{shape.shape.value}: {size(before)} at steady start -> {size(after)} at end;"
        f" {shape.reason}"
    )
