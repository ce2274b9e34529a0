"""Reports to render and read back: the real 256 B/request leak run against three clean
baseline runs, hostile names from the measured code, and what a Markdown renderer sees
of a summary (to show that no name broke out of its place)."""

from __future__ import annotations

import dataclasses
import datetime
import re

from hypothesis import strategies as st

from gate.report.report import Report
from gate.result import read_result
from gate.scenario import BudgetSpec
from gate.summary import CurveSample, History, summarize
from gate.verdict import decide
from tests.support.repo import FIXTURES
from tests.support.values import make_summary

NOW = datetime.datetime(2026, 11, 21, 8, 0, tzinfo=datetime.UTC)
"""When :func:`leak_report`'s run is summarized."""


def flat_curve(heap: int, rss: int) -> tuple[CurveSample, ...]:
    """A recorded run's curve over 10,000 requests: flat at ``heap`` (give or take 2 KB)
    and at ``rss``."""
    return tuple(CurveSample(float(r), heap + (r % 3) * 1000, rss) for r in range(0, 10_001, 500))


def leak_report(**history_changes: object) -> Report:
    """The real 256 B/request leak run (fixture) against three clean baseline runs."""
    result = read_result(FIXTURES / "result-v1-leak256.json")
    runs = tuple(
        dataclasses.replace(
            make_summary(run_id=f"clean{i}", peak_heap=5_700_000 + i * 1000, peak_rss=52 * 2**20),
            curve=flat_curve(5_700_000, 50 * 2**20),
            provenance=dataclasses.replace(result.provenance, commit=f"{i}abcdef0123"),
        )
        for i in range(3)
    )
    history = dataclasses.replace(History(2, "demo", runs), **history_changes)
    current = summarize(result, now=NOW)
    decision = decide(current, history, BudgetSpec())
    return Report(result, current, decision, "memgate-out/demo/result.json")


HOSTILE = st.text(
    alphabet=st.sampled_from(list("ab:,%=\r\n|`<>&*_[]#!$\\\"' "))
    | st.characters(exclude_categories=("Cs",)),  # lone surrogates are not text
    min_size=1,
    max_size=40,
)
"""Names the measured code may hold: what means something in a workflow command, in
Markdown or in HTML, line breaks, and any other character."""


def table_cells(row: str) -> list[str]:
    """The cells of a GFM table row: split on pipes that are not escaped."""
    cells, cell, escaped = [], "", False
    for char in row.strip()[1:-1]:
        if char == "|" and not escaped:
            cells.append(cell)
            cell = ""
        else:
            cell += char
        escaped = char == "\\" and not escaped
    return [*cells, cell]


def markdown_structure(markdown: str) -> list[str]:
    """What each line of a summary is, as a Markdown renderer would see it (lines end
    at LF only)."""
    kinds = []
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            kinds.append("fence")
        elif line.startswith("#"):
            kinds.append("heading")
        elif line.startswith("|"):
            kinds.append(f"row of {len(table_cells(line))}")
        elif re.match(r"(- |\d+\. )", line):
            kinds.append("item")
        else:
            kinds.append("text" if line.strip() else "blank")
    return kinds
