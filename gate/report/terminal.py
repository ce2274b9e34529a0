"""The short summary ``memgate run`` prints: load, memory, capture and top sites."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table

from gate.model import RunResult

TOP_SITES = 5


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


def render_run(result: RunResult, *, width: int = 100) -> str:
    """The run summary as plain text."""
    load = result.load
    points = result.curve.points
    warm = points[result.curve.warmup_index]
    end = points[-1]
    per_request = max(end.requests - warm.requests, 1)

    summary = Table(box=box.SIMPLE, show_header=False, title=f"memgate run: {result.scenario.name}")
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row(
        "load",
        f"{load.requests:,} requests ({load.warmup_requests:,} warm-up,"
        f" {load.measured_requests:,} measured), {load.failures:,} failed;"
        f" {load.requests_per_second:,.0f} req/s measured; stopped by {load.stop_reason}",
    )
    for name, before, after in (("heap", warm.heap, end.heap), ("rss", warm.rss, end.rss)):
        summary.add_row(
            name,
            f"{size(before)} after warm-up -> {size(after)} at end"
            f" ({size((after - before) / per_request)}/request)",
        )
    summary.add_row(
        "capture",
        f"{result.capture.file}: {size(result.capture.bytes)}, {result.capture.snapshots:,}"
        f" snapshots, read in {result.capture.read_seconds:.1f} s",
    )

    sites = Table(box=box.SIMPLE, title="allocation sites that grew most after warm-up")
    sites.add_column("#", justify="right")
    sites.add_column("growth/request", justify="right")
    sites.add_column("live at end", justify="right")
    sites.add_column("where")
    growing = [site for site in result.sites if site.growth_per_request > 0][:TOP_SITES]
    if not growing:
        sites.caption = "no allocation site grew after warm-up"
    for rank, site in enumerate(growing, start=1):
        frame = site.user_frame or (site.stack[0] if site.stack else None)
        where = f"{frame.file}:{frame.line} in {frame.function}" if frame else "(no Python frame)"
        if site.user_frame is None and frame is not None:
            where += " (not user code)"
        sites.add_row(str(rank), size(site.growth_per_request), size(site.live_bytes_end), where)

    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False)
    console.print(summary)
    console.print(sites)
    return out.getvalue()
