"""The job summary: verdict first, findings table, curves (Mermaid), sites, provenance.

GitHub renders Markdown with Mermaid ``xychart-beta`` blocks. Everything that comes from
the measured code (file and function names, messages quoting them) is escaped, so a
name cannot break the table or inject markup.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from gate.merge import Merged
from gate.model import Frame, Provenance, RunResult, shown_file
from gate.outcome import Outcome
from gate.report.curves import lines, on_grid
from gate.report.history_trend import history_trend
from gate.report.links import code_link
from gate.report.parts import (
    GROWTH_CHECKS,
    baseline_text,
    census_text,
    change,
    changed_files,
    collections_text,
    dependency_notes,
    failures_text,
    gc_text,
    growing_processes,
    growing_sites,
    headline,
    heap_name,
    keeper,
    no_sites_text,
    not_user_code,
    nothing_retained,
    process_growth,
    process_name,
    rate,
    resources_text,
    retained_text,
    service_frames,
    several_processes,
    tally,
)
from gate.report.report import Report
from gate.summary import RunSummary
from gate.units import quantity, size
from gate.verdict import Finding

CHART_POINTS = 30
PALETTE = ("#d62728", "#1f77b4")
"""Line colours in the charts: this run, then the baseline."""
ICON = {Outcome.PASS: "✅", Outcome.FLAG: "⚠️", Outcome.FAIL: "❌", Outcome.ERROR: "❗"}
MARK = {Outcome.FAIL: "❌ fail", Outcome.FLAG: "⚠️ flag"}
STACK_FRAMES = 12

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#~!&$])")
_AUTOLINK = re.compile(r"(:)(?=//)|(?<=www)(\.)", re.IGNORECASE)
"""Where GitHub's renderer would start a link in plain text (``http://``, ``www.``): an
escaped ``:`` or ``.`` reads the same and starts none."""


def md(text: str) -> str:
    """Text safe anywhere in a line of Markdown, table cells included: no markup, and
    no link GitHub would make of a name (``http://x.py``, ``www.x``, ``a@b.c``)."""
    escaped = _SPECIAL.sub(r"\\\1", " ".join(text.split()))
    escaped = _AUTOLINK.sub(lambda m: "\\" + (m[1] or m[2]), escaped)
    # An address is linked whatever is escaped: an empty comment splits the text there.
    return escaped.replace("@", "@<!-- -->")


def code(text: str, *, cell: bool = False) -> str:
    """Inline code, or escaped text when the code span could not hold it. In a table
    ``cell``, a pipe is escaped even inside the code span (GitHub's rule)."""
    text = " ".join(text.split())
    if "`" in text or (cell and "\\" in text):  # a backslash would escape the pipe's escape
        return md(text)
    return "`" + (text.replace("|", "\\|") if cell else text) + "`"


def fenced(text: str, info: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def render_markdown(report: Report) -> str:
    result, decision = report.result, report.decision
    name = result.scenario.key
    verdict = decision.verdict
    out = [f"## {ICON[verdict]} memgate {code(name)}: {verdict.value.upper()}", ""]
    load = result.load
    compared = decision.compared_runs
    base = report.baseline
    against = (
        f"compared with {compared} baseline run{'' if compared == 1 else 's'}"
        + (f" (newest: {_run_name(base.provenance)})" if base else "")
        if compared
        else "no baseline runs to compare with"
    )
    out.append(
        f"{load.measured_requests:,} measured requests at {load.requests_per_second:,.0f} req/s;"
        f" shape **{result.analysis.shape.value}**; {heap_name(result)}"
        f" {md(rate(result.analysis.heap.trend))}; {against}."
    )
    grew = [f for f in decision.findings if f.check in GROWTH_CHECKS]
    if grew and (kept := keeper(result)):
        out += ["", f"**{md(kept[0].upper() + kept[1:])}**."]
    if failed := failures_text(result):
        out += ["", f"Failed requests, most often: {md(failed)}."]
    if result.resources:
        out += ["", f"Resources, steady start to end: {md(resources_text(result))}."]
    if result.gc:
        out += ["", f"Garbage collector: {md(gc_text(result))}."]
    if collected := collections_text(result):
        out += ["", f"Retained heap: {md(collected)}."]
    out.append("")
    if decision.findings:
        out += _findings(decision.findings, report.result)
    else:
        out.append("Nothing past the history's noise, no budget exceeded.")
    out.append("")
    changed = dependency_notes(report)
    if changed:
        out += ["Dependencies changed since the compared runs:", ""]
        out += [f"- {md(line)}" for line in changed]
        out.append("")
    out += _charts(report)
    out += _trend(report)
    out += _processes(report)
    out += _sites(report)
    out += _retention(report)
    out += _provenance(result.provenance, base)
    out += _next(report)
    return "\n".join(out) + "\n"


def _findings(findings: Sequence[Finding], result: RunResult | None = None) -> list[str]:
    """The findings table, each finding once with its sentence; with the ``result``, the
    service's own lines link to GitHub."""
    out = [
        "| | metric | baseline ± spread | current | change | why | where |",
        "|---|---|--:|--:|--:|---|---|",
    ]
    for f in findings:
        current = quantity(f.current, f.unit) if f.current is not None else ""
        link = code_link(result, f.where) if result else None
        out.append(
            f"| {MARK[f.severity]} | {md(f.metric)} | {md(baseline_text(f))} | {md(current)}"
            f" | {md(change(f))} | {md(f.message)} | {_where(f.where, cell=True, link=link)} |"
        )
    out.append("")
    return out


def render_merged_markdown(merged: Merged) -> str:
    """One job summary for several checks: the verdict in the first line, one table row
    per scenario, then each failing or flagged scenario's findings, then the inputs that
    could not be merged."""
    verdict = merged.verdict
    out = [f"## {ICON[verdict]} memgate merge: {verdict.value.upper()}", ""]
    out += [md(tally(merged)) + ".", ""]
    if merged.reports:
        out += [
            "| scenario | environment | verdict | findings | worst finding | where |",
            "|---|---|---|--:|---|---|",
        ]
        for r in merged.reports:
            top = r.worst
            out.append(
                f"| {code(r.scenario, cell=True)} | {code(r.environment, cell=True)}"
                f" | {ICON[r.verdict]} {r.verdict.value} | {len(r.findings)}"
                f" | {md(headline(top)) if top else ''}"
                f" | {_where(top.where, cell=True) if top else ''} |"
            )
        out.append("")
    for r in merged.reports:
        if not r.findings:
            continue
        out += [
            f"### {ICON[r.verdict]} {code(r.scenario)} on {code(r.environment)}:"
            f" {r.verdict.value.upper()}",
            "",
        ]
        runs = f"{r.compared_runs} baseline run{'' if r.compared_runs == 1 else 's'}"
        commit = (r.commit or "")[:7]
        made = f" at {code(commit)}" if commit else ""
        made += f" on {code(r.branch)}" if r.branch else ""
        out += [
            f"Shape **{md(r.shape)}**; compared with {runs}; run{made or ' at no known commit'};"
            f" report {code(r.source)}.",
            "",
        ]
        out += [*_findings(r.findings), ""]
    if merged.errors:
        out += [f"### {ICON[Outcome.ERROR]} Could not be merged", ""]
        out += [f"- {code(bad.source)}: {md(bad.reason)}" for bad in merged.errors]
        out.append("")
    return "\n".join(out) + "\n"


def _where(frame: Frame | None, *, cell: bool = False, link: str | None = None) -> str:
    """``file:line in function``; the place a link to ``link`` (its line on GitHub)."""
    if frame is None:
        return ""
    place = code(f"{shown_file(frame.file)}:{frame.line}", cell=cell)
    if link is not None:  # code_link's: a web address of safe characters, its path quoted
        place = f"[{place}]({link})"
    return f"{place} in {code(frame.function, cell=cell)}"


def _run_name(provenance: Provenance) -> str:
    commit = (provenance.commit or "")[:7]
    parts = [code(commit) if commit else "no commit"]
    if provenance.branch:
        parts.append(f"on {code(provenance.branch)}")
    return " ".join(parts)


def _charts(report: Report) -> list[str]:
    out = ["### Memory against requests", ""]
    for metric, title in (("heap", "Heap"), ("rss", "Anonymous RSS")):
        series = lines(report, metric)
        grid, values = on_grid(series, CHART_POINTS)
        low = min(min(v) for v in values) / 2**20
        high = max(max(v) for v in values) / 2**20
        pad = max((high - low) * 0.1, 0.1)
        chart = [
            "---",
            "config:",
            "  themeVariables:",
            "    xyChart:",
            f'      plotColorPalette: "{", ".join(PALETTE)}"',
            "---",
            "xychart-beta",
            f'  title "{title} (MiB) against requests"',
            f'  x-axis "requests" 0 --> {grid[-1]:.0f}',
            f'  y-axis "MiB" {max(low - pad, 0):.1f} --> {high + pad:.1f}',
            *(f"  line [{', '.join(f'{v / 2**20:.2f}' for v in line)}]" for line in values),
        ]
        out += [fenced("\n".join(chart), "mermaid"), ""]
        out += _chart_table(title, grid, [line.label for line in series], values)
    series = lines(report, "heap")
    legend = "Red: this run."
    if len(series) > 1:
        legend += f" Blue: {md(series[1].label)}, compared."
        ends = [line.requests[-1] for line in series]
        if max(ends) > 1.05 * min(ends):
            legend += f" Drawn up to {min(ends):,.0f} requests, where both runs have points."
    elif report.baseline is not None:
        legend += " The baseline run was recorded without its curve (baseline schema 1)."
    steady = report.result.analysis.steady.requests
    legend += f" Warm-up ends at {report.result.curve.warmup_requests:,} requests;"
    legend += f" the steady state analysed starts at {steady:,.0f}."
    return [*out, legend, ""]


TREND_ROWS = 10
"""Runs in the job summary's trend across the history: the newest (the HTML report has all)."""


def _trend(report: Report) -> list[str]:
    """The compared runs and this one, in bold, oldest first: each one's commit, growth
    and heap, to see when growth began; nothing without a history."""
    rows = history_trend(report)
    if not rows:
        return []
    shown = rows[-TREND_ROWS:]
    out = ["### Trend across the history", ""]
    if len(shown) < len(rows):
        out += [f"The newest {len(shown)} of {len(rows)} runs.", ""]
    out += [
        "| commit | recorded | growth [95% interval] | peak heap | final heap |",
        "|---|---|--:|--:|--:|",
    ]
    for row in shown:
        commit = code(row.commit, cell=True) + (" + uncommitted" if row.uncommitted else "")
        growth = md(rate(row.growth)) + (" (retained)" if row.retained else "")
        cells = [
            commit + (" (this run)" if row.current else ""),
            md(row.recorded),
            growth,
            size(row.peak_heap),
            size(row.final_heap),
        ]
        out.append("| " + " | ".join(f"**{c}**" if row.current else c for c in cells) + " |")
    out += [
        "",
        "Growth per request is the retained heap's (right after full collections) where a"
        " run kept it, marked (retained), else the heap's.",
        "",
    ]
    return out


TABLE_ROWS = 6
"""Rows of a chart's table, where Mermaid is not drawn."""


def _chart_table(
    title: str, grid: Sequence[float], labels: Sequence[str], values: Sequence[Sequence[float]]
) -> list[str]:
    """The chart's lines at a few points, folded away: what a reader sees where Mermaid
    is not drawn (an e-mail of the summary, a renderer without it)."""
    rows = sorted({round(i * (len(grid) - 1) / (TABLE_ROWS - 1)) for i in range(TABLE_ROWS)})
    out = [
        f"<details><summary>{md(title)} as a table</summary>",
        "",
        "| requests | " + " | ".join(md(label) for label in labels) + " |",
        "|--:|" + "--:|" * len(labels),
    ]
    for row in rows:
        cells = " | ".join(f"{line[row] / 2**20:.2f} MiB" for line in values)
        out.append(f"| {grid[row]:,.0f} | {cells} |")
    return [*out, "", "</details>", ""]


def _processes(report: Report) -> list[str]:
    result = report.result
    if not result.process_curves:
        return []
    steady, end = result.analysis.steady.index, len(result.curve.points) - 1
    grew = growing_processes(result)
    out = ["### Heap of each process", ""]
    if grew:
        named = ", ".join(
            f"{process_name(p)} ({code(p.capture)})" if p.capture else process_name(p) for p in grew
        )
        out += [f"Grew through the steady state: **{named}**.", ""]
    else:
        out += ["No process's heap grew through the steady state.", ""]
    out += ["| process | at steady start | at end | growth | |", "|---|--:|--:|--:|---|"]
    for process in result.process_curves:
        growth = process_growth(process)
        mark = "**grows**" if process in grew else ""
        out.append(
            f"| {process_name(process)} | {size(process.heap[steady])}"
            f" | {size(process.heap[end])} | {md(growth)} | {mark} |"
        )
    return [*out, ""]


def _sites(report: Report) -> list[str]:
    sites = growing_sites(report.result.sites)
    out = ["### Allocation sites growing with requests", ""]
    if not sites:
        return [*out, no_sites_text(report.result.capture), ""]
    for rank, site in enumerate(sites, start=1):
        frame = site.frame
        owner = md(not_user_code(site, report.result.provenance))
        native = site.native_frame
        calls = f", native: {code(str(native))}" if native is not None else ""
        out.append(
            f"{rank}. **{md(rate(site.trend))}**, confidence {site.confidence:.2f},"
            f" {size(site.live_bytes_end)} live at the end:"
            f" {_where(frame, link=code_link(report.result, frame))}{owner}{calls}"
        )
        stack = _frames(
            [
                f"{_oneline(f.function)}  {_oneline(f.file)}:{f.line}"
                for f in service_frames(site.stack)
            ]
        )
        out += ["", "   <details><summary>stack</summary>", ""]
        if site.native:
            natives = _frames([_oneline(str(f)) for f in site.native])
            out += ["   native frames, innermost first:", "", _indent(fenced(natives)), ""]
            out += ["   Python frames:", ""]
        out += [_indent(fenced(stack)), "", "   </details>", ""]
    return out


def _retention(report: Report) -> list[str]:
    retention = report.result.retention
    if retention is None:
        return []
    out = ["### What keeps the memory alive", ""]
    several = several_processes(retention)
    for retained in retention.retained:
        text = retained_text(retained, several)
        if retained.kind == "container":  # the path as code, the figures as text
            rest = text.removeprefix(retained.what)
            out.append(f"- {code(retained.what)} {md(rest.strip())}")
        else:
            out.append(f"- {md(text)}")
    if not retention.retained:
        out.append(md(nothing_retained(retention).capitalize() + "."))
    out += ["", f"Census of the collector's objects: {md(census_text(report.result))}.", ""]
    return out


def _frames(shown: list[str]) -> str:
    """Up to :data:`STACK_FRAMES` frames' lines, then how many more there are."""
    text = "\n".join(shown[:STACK_FRAMES])
    more = len(shown) - STACK_FRAMES
    return text + (f"\n... {more} more frames" if more > 0 else "")


def _oneline(text: str) -> str:
    return " ".join(text.split())


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


def _provenance(this: Provenance, base: RunSummary | None) -> list[str]:
    def rows(p: Provenance) -> list[tuple[str, str]]:
        return [
            ("commit", " + ".join(filter(None, (p.commit or "", changed_files(p))))),
            ("branch", p.branch or ""),
            ("started", p.started_at),
            ("environment", p.env_key),
            ("memgate / memray / locust", f"{p.memgate} / {p.memray} / {p.locust}"),
            ("host", p.hostname),
        ]

    header = "| | this run | baseline (newest compared) |" if base else "| | this run |"
    out = ["### Provenance", "", header, "|---|---|---|" if base else "|---|---|"]
    others = rows(base.provenance) if base else None
    for i, (label, value) in enumerate(rows(this)):
        cells = [value] + ([others[i][1]] if others else [])
        out.append(
            f"| {label} | " + " | ".join(code(c, cell=True) if c else "" for c in cells) + " |"
        )
    return [*out, ""]


def _next(report: Report) -> list[str]:
    verdict = report.decision.verdict
    if verdict is Outcome.PASS:
        return []
    result = report.result_path or "RESULT.json"
    out = ["### What to do next", ""]
    top = next(iter(growing_sites(report.result.sites)), None)
    fix = "Fix the growth"
    if top is not None and top.frame is not None:
        fix += f", starting at {_where(top.frame, link=code_link(report.result, top.frame))}"
    out.append(f"- {fix}; the HTML report has every site's full stack.")
    out.append(
        "- Or, if the growth is intended, accept it on the record (the run becomes the"
        " reference the next checks compare with):"
    )
    command = f'memgate baseline accept {shlex.quote(result)} --reason "why"'
    out += ["", _indent(fenced(command, "sh")), ""]
    return out
