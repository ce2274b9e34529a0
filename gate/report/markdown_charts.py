"""The job summary's charts (Mermaid ``xychart-beta``, each followed by its lines as a
folded table, for where Mermaid is not drawn) and its trend across the history."""

from __future__ import annotations

from collections.abc import Sequence

from gate.report.curves import lines, on_grid
from gate.report.history_trend import history_trend
from gate.report.markdown_text import code, fenced, md
from gate.report.parts import rate
from gate.report.report import Report
from gate.units import size

CHART_POINTS = 30
PALETTE = ("#d62728", "#1f77b4")
"""Line colours in the charts: this run, then the baseline."""


def charts(report: Report) -> list[str]:
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


def trend(report: Report) -> list[str]:
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
