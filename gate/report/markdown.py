"""The job summary: verdict first, findings table, curves (Mermaid), sites, provenance.

GitHub renders Markdown with Mermaid ``xychart-beta`` blocks. Everything that comes from
the measured code (file and function names, messages quoting them) is escaped, so a
name cannot break the table or inject markup.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from gate.merge import Merged
from gate.model import Frame, Provenance, RunResult, shown_file
from gate.outcome import Outcome
from gate.report.keepers import (
    GROWTH_CHECKS,
    MOST_SITES,
    Kept,
    by_keeper,
    keeper,
    keeper_heading,
    retained_text,
)
from gate.report.links import code_link
from gate.report.markdown_charts import charts, trend
from gate.report.markdown_text import code, fenced, md
from gate.report.parts import (
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
    no_sites_text,
    not_user_code,
    nothing_retained,
    process_growth,
    process_name,
    rate,
    resources_text,
    service_frames,
    several_processes,
    tally,
    unexplained_text,
)
from gate.report.report import Report
from gate.summary import RunSummary
from gate.units import quantity, size
from gate.verdict import Finding

ICON = {Outcome.PASS: "✅", Outcome.FLAG: "⚠️", Outcome.FAIL: "❌", Outcome.ERROR: "❗"}
MARK = {Outcome.FAIL: "❌ fail", Outcome.FLAG: "⚠️ flag"}
STACK_FRAMES = 12


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
        own, groups = by_keeper(result, decision.findings)
        out += _findings(own, result) if own else []
        for group in groups:
            out += _kept(group, result)
    else:
        out.append("Nothing past the history's noise, no budget exceeded.")
    out.append("")
    changed = dependency_notes(report)
    if changed:
        out += ["Dependencies changed since the compared runs:", ""]
        out += [f"- {md(line)}" for line in changed]
        out.append("")
    out += charts(report)
    out += trend(report)
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


def _kept(group: Kept, result: RunResult) -> list[str]:
    """The site findings one keeper explains, under it: the keeper and its growth, then
    :data:`MOST_SITES` of them, the rest folded away."""
    retention, sites = result.retention, group.findings
    several = retention is not None and several_processes(retention)
    title = md(keeper_heading(group, several))
    if group.keeper is not None and group.keeper.kind == "container":  # its path as code
        rest = retained_text(group.keeper, several).removeprefix(group.keeper.what)
        title = f"Kept alive by {code(group.keeper.what)} {md(rest.strip())}"
    count = f"{len(sites)} growing site{'' if len(sites) == 1 else 's'}"
    out = [f"**{title}**: {count}.", "", *_findings(sites[:MOST_SITES], result)]
    if len(sites) > MOST_SITES:
        more = f"and {len(sites) - MOST_SITES} more"
        out += [f"<details><summary>{more}</summary>", ""]
        out += [*_findings(sites[MOST_SITES:], result), "</details>", ""]
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
        return [*out, no_sites_text(report.result), ""]
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
    unexplained = unexplained_text(report.result)
    return [*out, md(unexplained), ""] if unexplained else out


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
