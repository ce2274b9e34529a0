"""The report formats by name, and one entry point that renders a report in any of them
(each reporter is imported only when used)."""

from __future__ import annotations

import enum
import os
from typing import TYPE_CHECKING

from gate.errors import InputError

if TYPE_CHECKING:
    from gate.merge import Merged
    from gate.report.report import Report


class Format(enum.StrEnum):
    TERMINAL = "terminal"
    JSON = "json"
    MARKDOWN = "markdown"
    GITHUB = "github"
    HTML = "html"
    BMF = "bmf"
    """Bencher Metric Format."""
    BENCHMARK = "benchmark"
    """github-action-benchmark's customSmallerIsBetter."""


MERGE_FORMATS = [Format.TERMINAL, Format.MARKDOWN, Format.JSON, Format.GITHUB]
"""The formats of ``memgate merge``."""


def render(report: Report, fmt: Format, *, workspace: str | None = None, width: int = 100) -> str:
    """``report`` in one format; annotations' files relative to ``workspace`` (default:
    the current folder), the terminal's text ``width`` columns wide."""
    if fmt is Format.TERMINAL:
        from gate.report.parts import dependency_notes
        from gate.report.terminal import render_decision, render_run

        return render_run(report.result, width=width) + render_decision(
            report.result.scenario.key,
            report.decision,
            width=width,
            changed=dependency_notes(report),
        )
    if fmt is Format.JSON:
        from gate.report.json import render_json

        return render_json(report)
    if fmt is Format.MARKDOWN:
        from gate.report.markdown import render_markdown

        return render_markdown(report)
    if fmt is Format.GITHUB:
        from gate.report.github import render_github

        return render_github(report, workspace or os.path.realpath(os.getcwd()))
    if fmt in (Format.BMF, Format.BENCHMARK):
        from gate.report.trends import render_benchmark_action, render_bmf

        return render_bmf(report) if fmt is Format.BMF else render_benchmark_action(report)
    from gate.report.html import render_html

    return render_html(report)


def render_merged(merged: Merged, fmt: Format, *, width: int = 100) -> str:
    """Merged reports in one format."""
    if fmt is Format.TERMINAL:
        from gate.report.terminal import render_merged as terminal

        return terminal(merged, width=width)
    if fmt is Format.MARKDOWN:
        from gate.report.markdown import render_merged_markdown

        return render_merged_markdown(merged)
    if fmt is Format.JSON:
        from gate.report.json import render_merged_json

        return render_merged_json(merged)
    if fmt is Format.GITHUB:
        from gate.report.github import render_merged_github

        return render_merged_github(merged)
    raise InputError(f"memgate merge has no {fmt.value} format")
