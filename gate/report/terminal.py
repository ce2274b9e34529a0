"""The summary ``memgate run`` prints: load, shape, curves, capture and top sites."""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from gate.merge import Merged
from gate.model import RunResult
from gate.observed import Retention
from gate.report.keepers import retained_text
from gate.report.parts import (
    baseline_text,
    capture_text,
    census_text,
    collections_text,
    failures_text,
    gc_text,
    growing_processes,
    growing_sites,
    headline,
    heap_ends,
    no_sites_text,
    not_user_code,
    nothing_retained,
    process_growth,
    process_name,
    ran_on_text,
    rate,
    resources_text,
    several_processes,
    tally,
    unexplained_text,
    where,
)
from gate.shapes import CurveShape
from gate.summary import AuditEntry, History
from gate.units import quantity, size
from gate.verdict import Decision, Finding

STOPPED = {
    "leak": "stopped early: the leak was certain",
    "shape": "stopped by the locustfile's LoadTestShape",
}
"""How a load's end reads, where ``stopped by REASON`` does not say it."""


def render_run(result: RunResult, *, width: int = 100) -> str:
    """The run summary as plain text."""
    load = result.load
    analysis = result.analysis
    points = result.curve.points
    steady = points[analysis.steady.index]
    end = points[-1]

    summary = Table(box=box.SIMPLE, show_header=False, title=f"memgate run: {result.scenario.key}")
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row(
        "load",
        f"{load.requests:,} requests ({load.warmup_requests:,} warm-up,"
        f" {load.measured_requests:,} measured), {load.failures:,} failed;"
        f" {load.requests_per_second:,.0f} req/s measured;"
        f" {STOPPED.get(load.stop_reason, f'stopped by {load.stop_reason}')}" + ran_on_text(result),
    )
    if failed := failures_text(result):
        summary.add_row("failures", failed)
    summary.add_row("shape", f"{analysis.shape.value.upper()}")
    summary.add_row("steady", f"from {steady.requests:,.0f} requests: {analysis.steady.reason}")
    for name, shape, before, after in (
        ("heap", analysis.heap, *heap_ends(result)),
        ("rss", analysis.rss, steady.rss, end.rss),
    ):
        summary.add_row(name, _curve_line(shape, before, after))
    summary.add_row("resources", resources_text(result))
    summary.add_row("gc", gc_text(result))
    if collected := collections_text(result):
        summary.add_row("collections", collected)
    summary.add_row("capture", capture_text(result.capture))
    if result.retention is not None:
        summary.add_row("census", census_text(result))

    sites = Table(box=box.SIMPLE, title="allocation sites most likely to be leaking")
    sites.add_column("#", justify="right")
    sites.add_column("growth [95% interval]", justify="right", no_wrap=True)
    sites.add_column("confidence", justify="right")
    sites.add_column("live at end", justify="right")
    sites.add_column("where", overflow="fold")
    growing = growing_sites(result.sites)
    text = no_sites_text(result)[:-1] if not growing else unexplained_text(result)[:-1]
    if text:
        sites.caption = text[0].lower() + text[1:]
    for rank, site in enumerate(growing, start=1):
        frame = site.frame
        place = (where(frame) or "(no Python frame)") + not_user_code(site, result.provenance)
        if site.native_frame is not None:
            place += f"\n  native: {site.native_frame}"
        sites.add_row(
            str(rank), rate(site.trend), f"{site.confidence:.2f}", size(site.live_bytes_end), place
        )

    out = io.StringIO()
    console = _console(out, width)
    console.print(summary)
    if result.process_curves:
        console.print(_processes(result))
    console.print(sites)
    if result.retention is not None:
        console.print(_retained(result.retention))
    return out.getvalue()


def _retained(retention: Retention) -> Table:
    table = Table(box=box.SIMPLE, show_header=False, title="what keeps the memory alive")
    table.add_column(overflow="fold")
    several = several_processes(retention)
    for retained in retention.retained:
        table.add_row(retained_text(retained, several))
    if not retention.retained:
        table.caption = nothing_retained(retention)
    return table


def _processes(result: RunResult) -> Table:
    steady, end = result.analysis.steady.index, len(result.curve.points) - 1
    grew = {p.pid for p in growing_processes(result)}
    table = Table(box=box.SIMPLE, title="heap of each profiled process")
    table.add_column("process")
    table.add_column("at steady start", justify="right")
    table.add_column("at end", justify="right")
    table.add_column("growth [95% interval]", justify="right", no_wrap=True)
    table.add_column("")
    for process in result.process_curves:
        table.add_row(
            process_name(process),
            size(process.heap[steady]),
            size(process.heap[end]),
            process_growth(process),
            "GROWS" if process.pid in grew else "",
        )
    return table


def _console(out: io.StringIO, width: int) -> Console:
    """Plain text: names from the measured code (``[/]``, ``:smile:``) are neither rich
    markup nor emoji codes."""
    return Console(
        file=out, width=width, color_system=None, highlight=False, markup=False, emoji=False
    )


def _curve_line(shape: CurveShape, before: int, after: int) -> str:
    return (
        f"{shape.shape.value}: {size(before)} at steady start -> {size(after)} at end;"
        f" {shape.reason}"
    )


def render_decision(
    scenario: str, decision: Decision, *, width: int = 100, changed: Sequence[str] = ()
) -> str:
    """The verdict and its findings as plain text; the verdict is the first line.
    ``changed``: the distributions whose version changed (:func:`dependency_notes`)."""
    head = (
        f"memgate check: {scenario}: {decision.verdict.value.upper()}"
        f" (compared with {decision.compared_runs} baseline run"
        f"{'' if decision.compared_runs == 1 else 's'})"
    )
    if not decision.findings:
        return head + "\n  nothing past the history's noise, no budget exceeded\n"
    out = io.StringIO()
    console = _console(out, width)
    console.print(_findings_table(decision.findings))
    if changed:
        console.print("  dependencies changed since the compared runs:")
        for line in changed:
            console.print(f"    {line}")
        console.print()
    return head + "\n" + out.getvalue()


def _findings_table(findings: Sequence[Finding]) -> Table:
    table = Table(box=box.SIMPLE, show_header=True)
    table.add_column("", no_wrap=True)
    table.add_column("metric")
    table.add_column("baseline ± spread", justify="right")
    table.add_column("current", justify="right")
    table.add_column("why", overflow="fold")
    table.add_column("where", overflow="fold")
    for f in findings:
        current = quantity(f.current, f.unit) if f.current is not None else ""
        table.add_row(
            f.severity.value.upper(), f.metric, baseline_text(f), current, f.message, where(f.where)
        )
    return table


def render_merged(merged: Merged, *, width: int = 100) -> str:
    """Several checks in one: the verdict first, one row per scenario, then the findings
    of each scenario that did not pass, then the inputs that could not be merged."""
    table = Table(box=box.SIMPLE, show_header=True)
    table.add_column("scenario", overflow="fold")
    table.add_column("environment", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("findings", justify="right")
    table.add_column("worst finding", overflow="fold")
    table.add_column("where", overflow="fold")
    for r in merged.reports:
        top = r.worst
        table.add_row(
            r.scenario,
            r.environment,
            r.verdict.value.upper(),
            str(len(r.findings)),
            headline(top) if top else "",
            where(top.where) if top else "",
        )
    out = io.StringIO()
    console = _console(out, width)
    # Lines outside tables are printed whole (one error, one file: one line).
    line = functools.partial(console.print, soft_wrap=True)
    line(f"memgate merge: {merged.verdict.value.upper()} ({tally(merged)})")
    if merged.reports:
        console.print(table)
    for r in merged.reports:
        if not r.findings:
            continue
        runs = f"{r.compared_runs} baseline run{'' if r.compared_runs == 1 else 's'}"
        verdict = r.verdict.value.upper()
        line(f"{r.scenario} on {r.environment}: {verdict} (compared with {runs}; {r.source})")
        console.print(_findings_table(r.findings))
    if merged.errors:
        line("could not be merged:")
        for bad in merged.errors:
            line(f"  {bad}")
    return out.getvalue()


def render_history(history: History, audit: list[AuditEntry], *, width: int = 100) -> str:
    """A scenario's baseline history, newest last, and its audit log."""
    table = Table(box=box.SIMPLE, title=f"baseline: {history.scenario}")
    for column in (
        "run",
        "recorded",
        "commit",
        "branch",
        "shape",
        "heap growth",
        "peak heap",
        "peak RSS",
        "environment",
    ):
        table.add_column(column)
    for run in history.runs:
        mark = " (reference)" if run.run_id == history.reference else ""
        table.add_row(
            run.run_id + mark,
            run.recorded_at,
            (run.provenance.commit or "")[:10],
            run.provenance.branch or "",
            run.shape.value,
            f"{run.heap.slope:,.1f} B/request",
            size(run.peak_heap),
            size(run.peak_rss),
            run.provenance.env_key,
        )
    out = io.StringIO()
    console = _console(out, width)
    console.print(table)
    for entry in audit:
        console.print(
            f"{entry.at} {entry.who} {entry.action}ed {entry.run_id}"
            f" (commit {(entry.commit or '?')[:10]}): {entry.reason}"
        )
    return out.getvalue()
