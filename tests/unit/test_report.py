"""Every report format against golden files, the summary ``memgate merge`` makes of several
reports, and the escaping that keeps names from the measured code from breaking out of a
table, a page or a workflow command.

Regenerate the golden files after an intended change with
``MEMGATE_UPDATE_GOLDEN=1 pytest tests/unit/test_report.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import html
import html.parser
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate import merge
from gate.merge import BadInput
from gate.model import Frame, NativeFrame, RunResult
from gate.observed import Census, Retained, Retention, SourceLine
from gate.outcome import Outcome
from gate.report.curves import Line
from gate.report.formats import Format, render
from gate.report.github import Annotation, annotate, annotate_merged, render_annotations
from gate.report.html import chart
from gate.report.json import render_merged_json
from gate.report.keepers import by_keeper
from gate.report.links import source_path
from gate.report.markdown import render_merged_markdown
from gate.report.markdown_text import code, fenced, md
from gate.report.parts import change
from gate.report.report import Report
from gate.scenario import BudgetSpec
from gate.summary import History, summarize
from gate.verdict import Finding, decide, worst_finding
from tests.support import (
    ENV,
    HOSTILE,
    NOW,
    doc,
    leak_doc,
    leak_report,
    markdown_structure,
    merged_three,
    parse_command,
    parsed,
    runner_lines,
    table_cells,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MEMGATE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        (Format.JSON, "leak256.report.json"),
        (Format.MARKDOWN, "leak256.summary.md"),
        (Format.GITHUB, "leak256.annotations.txt"),
        (Format.HTML, "leak256.report.html"),
    ],
)
def test_every_format_matches_its_golden_file(fmt: Format, name: str) -> None:
    golden(name, render(leak_report(), fmt, workspace="/repo"))


def test_terminal_report_has_the_run_and_the_verdict() -> None:
    text = render(leak_report(), Format.TERMINAL)
    assert "memgate run: demo" in text
    assert "memgate check: demo: FAIL (compared with 3 baseline runs)" in text


def test_json_report_figures() -> None:
    doc = json.loads(render(leak_report(), Format.JSON))
    assert (doc["report_version"], doc["verdict"], doc["compared_runs"]) == (1, "fail", 3)
    assert doc["run"]["heap_growth"]["low"] > 250
    assert doc["baseline"]["run_id"] == "clean2"
    leak = doc["sites"][0]
    assert (leak["frame"]["file"], leak["user_code"]) == ("examples/demo_service/app.py", True)
    leaking = next(f for f in doc["findings"] if f["check"] == "leak")
    assert leaking["where"]["function"] == "__call__" and leaking["severity"] == "fail"


def test_a_pass_without_baseline_has_one_line_in_each_chart() -> None:
    report = leak_report(runs=())
    text = render(report, Format.MARKDOWN)
    assert text.startswith("## ❌ memgate `demo`: FAIL\n")  # a leak with no baseline fails
    assert "no baseline runs to compare with" in text
    charts = text.split("```mermaid")[1:]
    assert len(charts) == 2 and all(chart.count("  line [") == 1 for chart in charts)


def test_findings_at_one_line_become_one_annotation() -> None:
    notes = annotate(leak_report(), "/repo")
    placed = [n for n in notes if n.file]
    assert [(n.level, n.file) for n in placed] == [("error", "examples/demo_service/app.py")]
    assert placed[0].title == "memgate demo: memory regression (2 findings)"
    assert len(placed[0].message.splitlines()) == 2
    assert all(n.file is None for n in notes if n is not placed[0])


def test_annotations_outside_the_workspace_have_no_file() -> None:
    assert all(n.file is None for n in annotate(leak_report(), "/somewhere/else"))


def test_source_path_resolves_against_the_service_folder() -> None:
    result = leak_report().result
    frame = Frame("f", "examples/demo_service/app.py", 3)
    assert source_path(result, frame, "/repo") == "examples/demo_service/app.py"
    assert source_path(result, frame, "/repo/examples") == "demo_service/app.py"
    assert source_path(result, frame, "/rep") is None
    assert source_path(result, Frame("f", "/usr/lib/python3.11/json.py", 1), "/repo") is None


def test_change_is_signed_and_relative_only_when_meaningful() -> None:
    def finding(current: float, baseline: float) -> Finding:
        return Finding(
            check="history",
            severity=Outcome.FAIL,
            metric="m",
            unit="B",
            current=current,
            baseline=baseline,
            spread=0,
            limit=0,
            message="",
        )

    assert change(finding(3 * 2**20, 2 * 2**20)) == "+1.0 MiB (+50%)"
    assert change(finding(1024, 2048)) == "-1.0 KiB (-50%)"
    assert change(finding(256, 0.01)) == "+256 B"


@settings(max_examples=300, deadline=None)
@given(title=HOSTILE, message=HOSTILE, file=HOSTILE, line=st.integers(1, 10**6))
def test_hostile_annotation_text_parses_back_to_one_command(
    title: str, message: str, file: str, line: int
) -> None:
    notes = [
        Annotation("error", title, message, file, line),
        Annotation("warning", message, title),
    ]
    text = render_annotations(notes)
    lines = runner_lines(text)
    # CR and LF are escaped: one line per annotation, whatever the names held.
    assert len(lines) == 2
    first = parse_command(lines[0])
    assert first == ("error", {"title": title, "file": file, "line": str(line)}, message)
    assert parse_command(lines[1]) == ("warning", {"title": message}, title)


def test_a_line_below_one_is_left_out_as_actions_core_does() -> None:
    text = render_annotations([Annotation("error", "t", "m", "app.py", 0)])
    assert parse_command(text.strip()) == ("error", {"title": "t", "file": "app.py"}, "m")


def test_annotations_are_returned_whatever_github_action_utils_is_told(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """``COMMANDS_USE_SUBPROCESS=1`` makes github-action-utils print through a child
    process, to the terminal: the reporter still returns every command, and prints
    none itself."""
    import github_action_utils

    monkeypatch.setattr(github_action_utils, "COMMANDS_USE_SUBPROCESS", True)
    notes = [Annotation("error", "t", "m", "app.py", 3), Annotation("warning", "w", "n")]
    text = render_annotations(notes)
    assert [parse_command(line)[0] for line in text.splitlines()] == ["error", "warning"]
    assert capfd.readouterr().out == ""
    assert github_action_utils.COMMANDS_USE_SUBPROCESS is True  # left as it was


@pytest.mark.slow  # 100 whole reports in every format: 18 s
@settings(max_examples=100, deadline=None)
@given(name=HOSTILE, function=HOSTILE)
def test_hostile_frame_names_through_the_whole_reporter(name: str, function: str) -> None:
    """A leaking site whose file and function names are hostile: still one command per
    annotation, at the same file, and no markup in the summary or the page."""
    report = leak_report()
    old = report.result.sites[0].user_frame
    assert old is not None
    frame = Frame(function, f"examples/{name}.py", old.line)
    result = _with_leak_frame(report.result, old, frame)
    current = summarize(result, now=NOW)
    decision = decide(current, History(2, "demo", report.decision.compared), BudgetSpec())
    hostile = Report(result, current, decision, report.result_path)
    notes = annotate(hostile, "/repo")
    lines = runner_lines(render_annotations(notes))
    assert len(lines) == len(notes)
    back = [parse_command(line) for line in lines]
    assert back == [
        (
            n.level,
            {"title": n.title} | ({"file": n.file, "line": str(n.line)} if n.file else {}),
            n.message,
        )
        for n in notes
    ]
    assert any(n.line == old.line for n in notes) == any(n.file for n in notes)
    # The summary has the same structure as with plain names: headings, table rows with
    # their number of cells, list items, fences: no name broke out of its place.
    summary = render(hostile, Format.MARKDOWN)
    assert markdown_structure(summary) == markdown_structure(render(leak_report(), Format.MARKDOWN))
    # And as GitHub's renderer reads it: the same blocks, rows and cells, and no link
    # made of a name (a name a code span cannot hold is escaped text instead: inline
    # elements may differ).
    rendered, plain = _github_html(summary), _github_html(render(leak_report(), Format.MARKDOWN))
    assert _blocks(rendered) == _blocks(plain)
    assert "<a " not in rendered
    page = render(hostile, Format.HTML)
    assert _tags(page) == _tags(render(leak_report(), Format.HTML))


def _github_html(markdown: str) -> str:
    """The summary as GitHub renders it: its own Markdown library (cmark-gfm, with the
    autolink and table extensions)."""
    import cmarkgfm

    return str(cmarkgfm.github_flavored_markdown_to_html(markdown))


_BLOCKS = {"h1", "h2", "h3", "h4", "table", "tr", "th", "td", "ul", "ol", "li", "pre", "p"}


def _blocks(html: str) -> list[str]:
    return [tag for tag in _tags(html) if tag in _BLOCKS]


def _text(html: str) -> str:
    """What a reader sees of a page: comments (and GitHub drops raw ones) take no room."""
    html = re.sub(r"<!--.*?-->", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize(
    "name",
    ["http://evil.example/x", "HTTPS://evil.example/x", "www.evil.example/x", "me@evil.example"],
)
def test_a_name_that_looks_like_a_link_is_not_one_on_github(name: str) -> None:
    report = leak_report()
    old = report.result.sites[0].user_frame
    assert old is not None
    frame = Frame("handler", f"examples/{name}.py", old.line)
    result = _with_leak_frame(report.result, old, frame)
    current = summarize(result, now=NOW)
    decision = decide(current, History(2, "demo", report.decision.compared), BudgetSpec())
    summary = render(Report(result, current, decision, report.result_path), Format.MARKDOWN)
    html = _github_html(summary)
    assert "<a " not in html, [line for line in html.splitlines() if "<a " in line]
    # The name is still there to read, as it is (no escape left showing).
    assert f"examples/{name}.py:handler" in _text(html)


def _with_leak_frame(result: RunResult, old: Frame, new: Frame) -> RunResult:
    sites = tuple(
        dataclasses.replace(
            site,
            user_frame=new if site.user_frame == old else site.user_frame,
            stack=tuple(new if f == old else f for f in site.stack),
        )
        for site in result.sites
    )
    return dataclasses.replace(result, sites=sites)


def _tags(page: str) -> list[str]:
    """The page's element structure: the same whatever text the names hold."""
    tags: list[str] = []

    class Collector(html.parser.HTMLParser):
        def handle_starttag(self, tag: str, attrs: object) -> None:
            tags.append(tag)

    Collector().feed(page)
    return tags


def test_chart_ticks_are_distinct_on_a_flat_curve() -> None:
    flat = Line("this run", (0.0, 1000.0), (5.4 * 2**20, 5.4 * 2**20))
    drawn = chart("heap", [flat], [])
    for ticks in (drawn.y_ticks, drawn.x_ticks):
        labels = [t.label for t in ticks]
        assert len(labels) >= 2 and len(set(labels)) == len(labels), labels


def test_a_report_never_shows_the_run_itself_as_its_baseline() -> None:
    report = leak_report()
    itself = dataclasses.replace(
        report.decision, compared=(*report.decision.compared, report.current)
    )
    shown = Report(report.result, report.current, itself).baseline
    assert shown is not None and shown.run_id == "clean2"


def test_markdown_escaping() -> None:
    assert md("a|b *c* <script>") == "a\\|b \\*c\\* \\<script\\>"
    assert md("two\nlines") == "two lines"
    assert code("x|y") == "`x|y`"  # outside a table, a pipe is a pipe
    assert code("x|y", cell=True) == "`x\\|y`"
    assert code("a`b") == "a\\`b"
    assert code("a\\|b", cell=True) == "a\\\\\\|b"
    assert fenced("has ``` inside") == "````\nhas ``` inside\n````"


def test_markdown_summary() -> None:
    text = render_merged_markdown(merged_three())
    assert text.startswith("## ❌ memgate merge: FAIL\n\n3 scenarios: 1 fail, 1 flag, 1 pass.\n")
    assert (
        f"| `demo` | `{ENV}` | ❌ fail | 7 | heap growth per request 256.7 B/request,"
        " +256.7 B/request | `examples/demo_service/app.py:54` in `__call__` |"
    ) in text
    assert f"| `api` | `{ENV}` | ✅ pass | 0 |  |  |" in text
    assert f"### ❌ `demo` on `{ENV}`: FAIL" in text
    assert "### ⚠️ `soak` on `Darwin-arm64-py3.12`: FLAG" in text
    assert "`api` on" not in text
    assert "Could not be merged" not in text


@settings(max_examples=100, deadline=None)
@given(name=HOSTILE, env=HOSTILE, function=HOSTILE, reason=HOSTILE)
def test_hostile_names_keep_the_markdown_structure(
    name: str, env: str, function: str, reason: str
) -> None:
    """Pipes, backticks, newlines and markup in scenario, environment, function and file
    names: the same headings, rows of the same cells, items, as with plain names."""

    def summary(name: str, env: str, function: str, source: str) -> str:
        data = doc(name, "fail", env)
        for finding in data["findings"]:
            if finding["where"]:
                finding["where"] = {"function": function, "file": f"{function}.py", "line": 7}
        reports = [parsed(data, source), parsed(doc("plain", "pass"))]
        return render_merged_markdown(merge.merge(reports, [BadInput(source, reason)]))

    hostile = summary(name, env, function, f"art/{name}/report.json")
    plain = summary("demo", "env", "f", "art/demo/report.json")
    assert markdown_structure(hostile) == markdown_structure(plain)


def test_markdown_escapes_pipes_backticks_and_newlines() -> None:
    data = doc("a|b`c\nd # e", "fail", env="x|y")
    text = render_merged_markdown(merge.merge([parsed(data)]))
    row = next(line for line in text.split("\n") if line.startswith("| a"))
    assert row.startswith("| a\\|b\\`c d \\# e | `x\\|y` | ❌ fail | 7 |")
    assert len(table_cells(row)) == 6
    assert "### ❌ a\\|b\\`c d \\# e on `x|y`: FAIL" in text


def test_json_summary() -> None:
    data = json.loads(render_merged_json(merged_three()))
    assert (data["merge_version"], data["verdict"]) == (1, "fail")
    assert data["counts"] == {"pass": 1, "flag": 1, "fail": 1}
    assert [s["scenario"] for s in data["scenarios"]] == ["demo", "soak", "api"]
    demo = data["scenarios"][0]
    assert (demo["environment"], demo["report"], demo["compared_runs"]) == (
        ENV,
        "art/demo/report.json",
        3,
    )
    worst_one = demo["findings"][demo["worst_finding"]]
    assert worst_one in leak_doc()["findings"]  # as report.json has it
    assert worst_one["check"] == "leak" and worst_one["severity"] == "fail"
    assert data["scenarios"][2]["worst_finding"] is None
    broken = merge.merge([], [BadInput("x.json", "not valid JSON")])
    assert json.loads(render_merged_json(broken))["errors"] == [
        {"source": "x.json", "reason": "not valid JSON"}
    ]


def test_annotations_one_per_scenario_and_level() -> None:
    merged = merge.merge(merged_three().reports, [BadInput("x.json", "not valid JSON")])
    lines = runner_lines(render_annotations(annotate_merged(merged)))
    back = [parse_command(line) for line in lines]
    assert [(name, props["title"]) for name, props, _ in back] == [
        ("error", f"memgate demo ({ENV}): memory regression (6 findings)"),
        ("warning", f"memgate demo ({ENV}): memory flag"),
        ("warning", "memgate soak (Darwin-arm64-py3.12): memory flag"),
        ("error", "memgate: error"),
    ]
    assert all("file" not in props for _, props, _ in back)
    assert back[0][2].endswith("(at examples/demo_service/app.py:54 in __call__)")
    assert back[-1][2] == "x.json: not valid JSON"


def _with_retention(report: Report, path: str) -> Report:
    retained = (
        Retained("container", path, "list", 577, 5526, 0.99, 4833),
        Retained("native", "app.Buffer", "app.Buffer", 10, 2010, 0.4, 4833),
        Retained("type", "dict", "dict", 1000, 3000, 0.4, 4833),
    )
    censuses = (Census(4833, "start", 1.95, 27554, 0.21), Census(4833, "end", 19.0, 27332, 0.18))
    result = dataclasses.replace(report.result, retention=Retention(retained, censuses, 4983.1))
    return dataclasses.replace(report, result=result)


def test_every_format_says_what_keeps_the_memory_alive() -> None:
    report = _with_retention(leak_report(), "examples.demo_service.app._retained")
    terminal = render(report, Format.TERMINAL, width=200)
    assert "what keeps the memory alive" in terminal
    assert "examples.demo_service.app._retained (list, +4,949 items, 0.99 per request)" in terminal
    assert "references native code took and kept" in terminal
    assert "start 27,554 objects, paused 0.21 s; end 27,332 objects, paused 0.18 s" in terminal
    summary = render(report, Format.MARKDOWN)
    assert "- `examples.demo_service.app._retained` (list, +4,949 items" in summary
    doc = json.loads(render(report, Format.JSON))
    assert doc["retention"]["retained"][0]["what"] == "examples.demo_service.app._retained"
    assert [c["seconds"] for c in doc["retention"]["censuses"]] == [0.21, 0.18]
    page = render(report, Format.HTML)
    assert "<h2>What keeps the memory alive</h2>" in page
    assert "<code>examples.demo_service.app._retained</code>" in page


def test_a_census_that_failed_is_said_not_taken_for_nothing_grown() -> None:
    censuses = (Census(4833, "start", 1.95, 27554, 0.21),)
    problem = "the end census of process 4833 failed: MemoryError"
    retention = Retention((), censuses, 0.0, (problem,))
    result = dataclasses.replace(leak_report().result, retention=retention)
    report = dataclasses.replace(leak_report(), result=result)
    for form in (Format.TERMINAL, Format.MARKDOWN, Format.HTML):
        text = " ".join(render(report, form, width=200).split())
        assert problem in text, form
        assert "grew with the requests" not in text, form
        assert "unknown: a census the comparison needs failed or never came" in text.lower()
    assert json.loads(render(report, Format.JSON))["retention"]["problems"] == [problem]
    # A fork's census failed, the main process's pair was compared: nothing grew there.
    both = (*censuses, Census(4833, "end", 19.0, 27332, 0.18))
    fork = dataclasses.replace(retention, censuses=both)
    forked = dataclasses.replace(report, result=dataclasses.replace(result, retention=fork))
    text = " ".join(render(forked, Format.TERMINAL, width=200).split())
    assert "in the processes whose censuses could be compared" in text and problem in text


def _native_report() -> Report:
    report = leak_report()
    top, *rest = report.result.sites
    native = (
        NativeFrame("keep", "leaky.c", 10, "/srv/app/leaky.cpython-311-x86_64-linux-gnu.so", True),
        NativeFrame(
            "PyObject_Vectorcall", "Objects/call.c", 299, "/usr/lib/libpython3.11.so", False
        ),
    )
    result = dataclasses.replace(
        report.result, sites=(dataclasses.replace(top, native=native), *rest)
    )
    return dataclasses.replace(report, result=result)


def test_every_format_shows_a_sites_native_frame_under_its_python_line() -> None:
    report = _native_report()
    shown = "keep in leaky.cpython-311-x86_64-linux-gnu.so (leaky.c:10)"
    terminal = render(report, Format.TERMINAL, width=200).splitlines()
    at = next(i for i, line in enumerate(terminal) if "app.py:54" in line and "1 " in line[:6])
    assert terminal[at + 1].strip() == f"native: {shown}"
    summary = render(report, Format.MARKDOWN)
    assert f"native: `{shown}`" in summary
    assert "native frames, innermost first:" in summary and "PyObject_Vectorcall in" in summary
    page = render(report, Format.HTML)
    assert f"<code>{shown}</code>" in page and "PyObject_Vectorcall in libpython3.11.so" in page
    doc = json.loads(render(report, Format.JSON))
    assert doc["sites"][0]["native_frame"]["function"] == "keep"
    assert [f["extension"] for f in doc["sites"][0]["native"]] == [True, False]
    # The annotation on the Python line names the native frame too.
    assert f"(native: {shown})" in render(report, Format.GITHUB)


CORE = "/venv/lib/python3.11/site-packages/somelib/_core.cpython-311-x86_64-linux-gnu.so"


def test_a_stripped_extensions_frame_is_shown_by_its_library_in_every_format() -> None:
    report = _native_report()
    top, *rest = report.result.sites
    stripped = NativeFrame("<unknown>", "<unknown>", 0, CORE, True)
    sites = (dataclasses.replace(top, native=(stripped, *top.native[1:])), *rest)
    report = dataclasses.replace(report, result=dataclasses.replace(report.result, sites=sites))
    shown = "in somelib/_core.cpython-311-x86_64-linux-gnu.so (no symbols)"
    assert str(stripped) == shown
    terminal = render(report, Format.TERMINAL, width=200).splitlines()
    at = next(i for i, line in enumerate(terminal) if "app.py:54" in line and "1 " in line[:6])
    assert terminal[at + 1].strip() == f"native: {shown}"
    summary = render(report, Format.MARKDOWN)
    assert f"native: `{shown}`" in summary and f"{shown}\n" in summary
    page = render(report, Format.HTML)
    assert f"<code>{shown}</code>" in page and f"{shown}  [extension]" in page
    assert f"(native: {shown})" in render(report, Format.GITHUB)
    # A library outside site-packages is named by its file; no library, no place.
    own = NativeFrame("<unknown>", "<unknown>", 0, "/srv/app/leaky.cpython-311.so", True)
    assert str(own) == "in leaky.cpython-311.so (no symbols)"
    assert str(NativeFrame("??", "??", 0)) == "??"


@settings(max_examples=50, deadline=None)
@given(path=HOSTILE)
def test_a_hostile_path_stays_text_in_every_format(path: str) -> None:
    report = _with_retention(leak_report(), f"app.{path}")
    plain = _with_retention(leak_report(), "app.plain")
    assert _tags(render(report, Format.HTML)) == _tags(render(plain, Format.HTML))
    summary = render(report, Format.MARKDOWN)
    assert markdown_structure(summary) == markdown_structure(render(plain, Format.MARKDOWN))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_bmf_has_bencher_metric_formats_documented_shape() -> None:
    """Bencher Metric Format: ``{benchmark: {measure: {value, lower_value?, upper_value?}}}``,
    measures named by slug, values numbers, the bounds around the value."""
    report = leak_report()
    doc = json.loads(render(report, Format.BMF))
    assert isinstance(doc, dict) and list(doc) == [report.result.scenario.key]
    measures = doc[report.result.scenario.key]
    assert set(measures) == {
        "heap-growth", "rss-growth", "peak-heap", "final-heap", "peak-rss", "final-rss"
    }  # fmt: skip
    for slug, metric in measures.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
        assert set(metric) <= {"value", "lower_value", "upper_value"} and "value" in metric
        assert all(_number(v) for v in metric.values()), (slug, metric)
        if "lower_value" in metric:
            assert metric["lower_value"] <= metric["value"] <= metric["upper_value"]
    heap = report.current.heap
    assert measures["heap-growth"] == {
        "value": heap.slope, "lower_value": heap.low, "upper_value": heap.high
    }  # fmt: skip
    assert measures["peak-heap"]["value"] == report.current.peak_heap


def test_benchmark_has_github_action_benchmarks_custom_shape() -> None:
    """``customSmallerIsBetter``: a list of ``{name, unit, value, range?, extra?}``."""
    report = leak_report()
    doc = json.loads(render(report, Format.BENCHMARK))
    assert isinstance(doc, list) and len(doc) == 6
    for entry in doc:
        assert set(entry) <= {"name", "unit", "value", "range", "extra"}
        assert isinstance(entry["name"], str) and isinstance(entry["unit"], str)
        assert _number(entry["value"])
        assert all(isinstance(entry[k], str) for k in ("range", "extra") if k in entry)
    assert len({e["name"] for e in doc}) == len(doc)  # each a chart of its own
    growth = doc[0]
    assert growth["name"] == "demo heap growth per request" and growth["unit"] == "B/request"
    assert growth["value"] == report.current.heap.slope


def test_the_html_summary_says_when_a_curves_growth_is_past_the_historys_limit() -> None:
    """The shape is judged against fixed materiality and may say 'no material growth';
    the history may still fail the growth: the summary sentence says both."""
    report = leak_report()
    rss = dataclasses.replace(report.result.analysis.rss, reason="no material growth")
    analysis = dataclasses.replace(report.result.analysis, rss=rss)
    result = dataclasses.replace(report.result, analysis=analysis)
    page = render(dataclasses.replace(report, result=result), Format.HTML)
    sentence = re.search(r"RSS [^;]*?\((no material growth[^)]*)\)", page)
    assert sentence is not None, page[:3000]
    assert "past the history&#39;s limit of 16.0 B/request, a fail" in sentence.group(1)


def test_stacks_are_shown_without_the_frames_that_started_the_service_under_memray() -> None:
    from gate.report.parts import service_frames

    stack = leak_report().result.sites[0].stack
    shown = service_frames(stack)
    assert len(shown) < len(stack)
    assert shown[-1].file.endswith("uvicorn/__main__.py") and shown[0] == stack[0]
    page = render(leak_report(), Format.HTML)
    assert "memray/commands/run.py" not in page and "&lt;frozen runpy&gt;" not in page
    assert "memray/commands/run.py" not in render(leak_report(), Format.MARKDOWN)
    # A stack that is all launcher keeps its innermost frame.
    assert len(service_frames(stack[-3:])) == 1


def test_the_html_verdict_has_its_why_in_one_line() -> None:
    report = leak_report()
    page = render(report, Format.HTML)
    why = re.search(r'<p class="why"><strong>Why:</strong> ([^<]*)</p>', page)
    assert why is not None
    worst = worst_finding(report.decision.findings)
    assert worst is not None and worst.severity is Outcome.FAIL
    assert html.unescape(why.group(1)) == worst.message


def test_charts_share_the_requests_axis_and_say_where_a_value_axis_starts() -> None:
    from gate.report.html import Line, chart

    gc = Line("this run", (100.0, 2600.0), (1.0, 2.0))
    shared = chart("GC", [gc], [], unit=1.0, x_max=5500.0)
    alone = chart("GC", [gc], [], unit=1.0)
    heap_like = chart("Heap", [Line("this run", (0.0, 5500.0), (1.0, 2.0))], [], unit=1.0)
    assert shared.x_ticks == heap_like.x_ticks  # the GC chart on the heap's axis
    assert alone.x_ticks != heap_like.x_ticks
    heap = chart("Heap (MiB)", [Line("this run", (0.0, 10.0), (3.0 * 2**20, 3.5 * 2**20))], [])
    assert "(the axis starts at 3.0, not 0)" in heap.title  # 3.0 MiB less 8% padding, rounded
    from_zero = chart("GC", [Line("this run", (0.0, 10.0), (0.0, 5.0))], [], unit=1.0)
    assert "axis starts" not in from_zero.title


def test_the_charts_draw_the_limits_the_checks_judged_by_and_the_historys_range() -> None:
    from gate.report.curves import history_range, limit_lines

    report = leak_report()
    limits = {f.metric: f.limit for f in report.decision.findings if f.limit is not None}
    x_max = report.result.curve.points[-1].requests
    peak, growth = limit_lines(report, "heap", x_max)
    assert peak.values == (limits["peak heap"], limits["peak heap"])
    warm = float(report.result.curve.warmup_requests)  # the peak is judged after it
    assert peak.requests == (warm, x_max) and peak.label == "peak heap limit 6.4 MiB"
    # The growth limit starts where the steady state does, at this run's heap there.
    steady = report.result.curve.points[report.result.analysis.steady.index]
    assert growth.requests == (steady.requests, x_max)
    rise = growth.values[1] - growth.values[0]
    assert growth.values[0] == steady.heap
    assert rise == pytest.approx(limits["heap growth per request"] * (x_max - steady.requests))
    rss_peak, rss_growth = limit_lines(report, "rss", x_max)
    assert rss_peak.values[0] == limits["peak RSS"]
    assert rss_growth.label.endswith("(a finding only beside the heap's)")
    # The range of the three baseline runs' heap, which lies flat at 5,700,000 bytes.
    area = history_range(report, "heap")
    assert area is not None
    low, high = area
    assert low.label == "range of the 3 baseline runs" and len(low.values) == 120
    assert low.values == high.values  # three runs of one curve
    assert all(5_700_000 <= v <= 5_702_000 for v in low.values)
    # Once accepted, the run is its own reference: it is no part of the history's range.
    runs = (*report.decision.compared[:2], dataclasses.replace(report.current, run_id="x"))
    itself = dataclasses.replace(report.current, curve=report.decision.compared[0].curve)
    mixed = dataclasses.replace(
        report, decision=dataclasses.replace(report.decision, compared=(*runs, itself))
    )
    area = history_range(mixed, "heap")
    assert area is not None and area[0].label == "range of the 3 baseline runs"
    # No history: nothing to draw.
    alone = leak_report(runs=())
    assert limit_lines(alone, "heap", x_max) == [] and history_range(alone, "heap") is None


def test_a_limit_far_off_the_curves_is_cut_and_said_to_be_off_the_chart() -> None:
    from gate.report.html import chart

    curve = Line("this run", (0.0, 1000.0), (5.0 * 2**20, 5.5 * 2**20))
    far = Line("peak heap limit 64.0 MiB", (0.0, 1000.0), (64.0 * 2**20,) * 2)
    near = Line("heap growth limit", (0.0, 1000.0), (5.0 * 2**20, 5.2 * 2**20))
    drawn = chart("Heap (MiB)", [curve], [], guides=[far, near])
    assert float(drawn.y_ticks[-1].label) < 6  # the axis is the curve's, not the limit's
    assert [label for label, _, _ in drawn.guides] == [
        "peak heap limit 64.0 MiB, above the chart",
        "heap growth limit",
    ]


SHA = "fc41e22b8f54f01971c261e3d87446e5ff78350b"  # the fixture run's commit


def _at_repository(report: Report, repository: str | None, folder: str | None) -> Report:
    provenance = dataclasses.replace(
        report.result.provenance, repository=repository, repository_path=folder
    )
    return dataclasses.replace(
        report, result=dataclasses.replace(report.result, provenance=provenance)
    )


def test_the_services_own_lines_link_to_github_at_the_runs_commit() -> None:
    report = _at_repository(leak_report(), "https://github.com/acme/shop", "")
    url = f"https://github.com/acme/shop/blob/{SHA}/examples/demo_service/app.py#L54"
    page = render(report, Format.HTML)
    # The findings' place (site and shape), the site's, and its stack's own frame.
    assert page.count(f'<a href="{url}">') == 4
    assert page.count('<a href="https://github.com/') == 4  # uvicorn's frames link nowhere
    summary = render(report, Format.MARKDOWN)
    rendered = _github_html(summary)
    assert rendered.count(f'<a href="{url}"><code>examples/demo_service/app.py:54</code></a>') >= 3
    # A service in a folder of its checkout: the path is the repository's.
    nested = _at_repository(leak_report(), "https://github.com/acme/shop", "services/demo")
    assert f"/blob/{SHA}/services/demo/examples/demo_service/app.py#L54" in render(
        nested, Format.HTML
    )


def test_no_link_without_a_repository_and_a_hostile_name_is_quoted() -> None:
    from gate.report.links import code_link

    plain = leak_report()
    assert "<a href" not in render(plain, Format.HTML)
    assert code_link(plain.result, plain.result.sites[0].frame) is None
    report = _at_repository(leak_report(), "https://github.com/acme/shop", "")
    odd = Frame("leak", "my app (1)/<b>#x.py", 7)
    sites = [dataclasses.replace(report.result.sites[0], user_frame=odd, stack=(odd,))]
    result = dataclasses.replace(report.result, sites=tuple(sites))
    assert code_link(result, odd) == (
        f"https://github.com/acme/shop/blob/{SHA}/my%20app%20%281%29/%3Cb%3E%23x.py#L7"
    )
    assert code_link(result, Frame("f", "/usr/lib/python3.11/json/decoder.py", 3)) is None
    for repository in ("javascript:alert(1)", "https://github.com/a/b) [x](y"):
        bad = dataclasses.replace(result.provenance, repository=repository)
        assert code_link(dataclasses.replace(result, provenance=bad), odd) is None


def test_the_job_summary_gives_each_finding_once_and_each_chart_as_a_table_too() -> None:
    """The failures were listed twice (the table, then bullets); Mermaid is not drawn
    everywhere the summary is read."""
    from gate.report.markdown import render_markdown

    report = leak_report()
    text = render_markdown(report)
    for finding in report.decision.findings:
        first = md(finding.message)
        assert text.count(first) == 1, finding.message
    assert text.count("```mermaid") == 2
    assert "<details><summary>Heap as a table</summary>" in text
    assert "<details><summary>Anonymous RSS as a table</summary>" in text


def test_the_keeper_goes_with_the_leak_in_the_annotation_and_the_summarys_first_lines() -> None:
    """The census named the keeper only in the report's retention section: a reviewer
    read the allocation line (get_json) and not what held the memory."""
    report = _with_retention(leak_report(), "app._recent_payloads")
    notes = annotate(report, "/repo")
    leak = next(n for n in notes if "memory leaks" in n.message)
    assert leak.message.count("ept alive by app._recent_payloads (list, +4,949 items") == 1
    peak = next(n for n in notes if n.message.startswith("peak heap"))
    assert "ept alive by" not in peak.message  # a peak is no growth: no keeper
    summary = render(report, Format.MARKDOWN)
    first = summary.split("\n| |")[0]
    assert "**Kept alive by app.\\_recent\\_payloads (list, +4,949 items" in first


def test_an_annotation_carries_five_findings_and_counts_the_rest() -> None:
    """A leak through a web framework made 34 site findings at one line: 6 KB."""
    report = leak_report()
    leak = next(f for f in report.decision.findings if f.check == "leak")
    many = tuple(
        dataclasses.replace(leak, message=f"site {n} grows " + "x" * 900) for n in range(34)
    )
    decision = dataclasses.replace(report.decision, findings=many)
    (note,) = annotate(dataclasses.replace(report, decision=decision), "/repo")
    assert note.title.endswith("(34 findings)")
    assert note.message.count("grows") <= 5
    assert len(note.message) <= 4000
    assert "and 29 more here: see the job summary" in note.message or note.message.endswith(
        "\u2026"
    )


def _trend_rows(markdown: str) -> list[list[str]]:
    """The cells of the job summary's trend table, a list per row (header left out)."""
    section = markdown.split("### Trend across the history\n", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [table_cells(row) for row in rows[2:]]


def test_the_trend_across_the_history_lists_each_run_then_this_one() -> None:
    from gate.report.history_trend import history_trend
    from gate.summary import TrendSummary

    report = leak_report()
    first, second, third = report.decision.compared
    dirty = dataclasses.replace(second.provenance, dirty=("app.py",))
    runs = (
        dataclasses.replace(first, retained=TrendSummary(1.5, 1.0, 2.0, 0.01)),
        dataclasses.replace(second, provenance=dirty),
        dataclasses.replace(third, provenance=dataclasses.replace(third.provenance, commit=None)),
    )
    report = dataclasses.replace(
        report, decision=dataclasses.replace(report.decision, compared=runs)
    )
    rows = history_trend(report)
    assert [(r.name, r.current) for r in rows] == [
        ("0abcdef", False),
        ("1abcdef + uncommitted", False),
        ("?", False),
        ("fc41e22", True),
    ]
    assert rows[0].growth.slope == 1.5 and rows[0].retained  # the retained heap's, kept
    assert rows[3].growth == report.current.heap and rows[3].recorded == "2026-11-21 08:00"
    assert (rows[1].recorded, rows[1].peak_heap, rows[1].final_heap) == (
        "2026-11-21 07:00",
        5_701_000,
        5_701_000,
    )

    text = render(report, Format.MARKDOWN)
    assert text.index("### Memory against requests") < text.index("### Trend across the history")
    cells = _trend_rows(text)
    assert [row[0].strip() for row in cells] == [
        "`0abcdef`",
        "`1abcdef` + uncommitted",
        "`?`",
        "**`fc41e22` (this run)**",
    ]
    assert cells[0][2].strip() == r"1.5 B/request \[1.0, 2.0\] (retained)"
    assert [c.strip() for c in cells[3][1:]] == [
        "**2026-11-21 08:00**",
        r"**256.7 B/request \[256.0, 257.5\]**",
        "**8.0 MiB**",
        "**8.0 MiB**",
    ]

    page = render(report, Format.HTML)
    trend = page.split("<h2>Trend across the history</h2>", 1)[1].split("<h2>", 1)[0]
    assert '<title id="trend-title">Heap growth (B/request) of each run' in trend
    assert trend.count('class="interval"') == 4  # one per run: its 95% interval
    assert trend.count('stroke="#d62728" stroke-width="2"') == 1  # this run, in red
    labels = re.findall(r'transform="rotate\([^)]*\)">([^<]*)</text>', trend)
    assert labels == ["0abcdef", "1abcdef+", "?", "fc41e22"]
    table = trend.split("<table", 1)[1]
    assert table.count("<tr") == 5 and table.count('<tr class="current">') == 1
    assert "256.7 B/request [256.0, 257.5]" in table and "5.4 MiB" in table


def test_no_history_no_trend_and_an_accepted_run_is_not_drawn_twice() -> None:
    from gate.report.history_trend import history_trend

    alone = leak_report(runs=())
    assert history_trend(alone) == []
    assert "Trend across the history" not in render(alone, Format.MARKDOWN)
    assert "Trend across the history" not in render(alone, Format.HTML)
    # Accepted as the reference, the run is in the history: marked there, not added.
    report = leak_report()
    compared = (*report.decision.compared, report.current)
    accepted = dataclasses.replace(
        report, decision=dataclasses.replace(report.decision, compared=compared)
    )
    rows = history_trend(accepted)
    assert [r.current for r in rows] == [False, False, False, True]
    assert render(accepted, Format.HTML).count('class="interval"') == 4


def test_the_job_summarys_trend_shows_the_newest_ten_runs() -> None:
    report = leak_report()
    base = report.decision.compared[0]
    runs = tuple(
        dataclasses.replace(
            base,
            run_id=f"r{i}",
            provenance=dataclasses.replace(base.provenance, commit=f"{i:02d}cafe00"),
        )
        for i in range(12)
    )
    report = dataclasses.replace(
        report, decision=dataclasses.replace(report.decision, compared=runs)
    )
    text = render(report, Format.MARKDOWN)
    assert "The newest 10 of 13 runs." in text
    cells = _trend_rows(text)
    assert [row[0].strip()[:4] for row in cells] == [
        *(f"`{i:02d}c" for i in range(3, 12)),
        "**`f",
    ]
    assert render(report, Format.HTML).count('class="interval"') == 13  # the page has all


CACHE = Retained(
    "container",
    "shop.views._page_cache",
    "dict",
    0,
    5000,
    1.0,
    4833,
    adds=(SourceLine("shop/views.py", 21, "render_page"),),
)
STORE = Retained("container", "shop.sessions._store", "list", 100, 900, 0.16, 4833)


def _sites_report(frames: list[tuple[Frame, ...]], retained: tuple[Retained, ...]) -> Report:
    """The leak run whose site findings are one per stack of ``frames`` (innermost
    first, each named by its first frame), the census naming ``retained``."""
    report = leak_report()
    template = report.result.sites[0]
    sites = tuple(
        dataclasses.replace(template, stack=(*stack, *template.stack[1:]), user_frame=stack[0])
        for stack in frames
    )
    site = next(f for f in report.decision.findings if f.check == "site")
    findings = tuple(f for f in report.decision.findings if f.check != "site") + tuple(
        dataclasses.replace(site, message=f"{s[0].file}:{s[0].function} grows 99 B/r", where=s[0])
        for s in frames
    )
    censuses = (Census(4833, "start", 1.95, 27554, 0.21), Census(4833, "end", 19.0, 27332, 0.18))
    retention = Retention(retained, censuses, 4983.1) if retained else None
    result = dataclasses.replace(report.result, sites=sites, retention=retention)
    decision = dataclasses.replace(report.decision, findings=findings)
    return dataclasses.replace(report, result=result, decision=decision)


def test_34_sites_one_keeper_are_one_heading_and_the_adding_line_is_annotated() -> None:
    """A leak through a web framework made 34 site findings at one line, the cache that
    held them named only further down; the Django cache was named at its ``render``
    line (20 here), not the line that stores the page in it (21)."""
    views = [(Frame(f"render_{n}", "shop/views.py", 20),) for n in range(34)]
    report = _sites_report(views, (CACHE,))
    own, groups = by_keeper(report.result, report.decision.findings)
    assert [f.check for f in own] == [f.check for f in report.decision.findings[:6]]
    assert [(g.keeper, len(g.findings)) for g in groups] == [(CACHE, 34)]
    notes = annotate(report, "/repo")
    (line,) = [n for n in notes if (n.file, n.line) == ("shop/views.py", 20)]
    assert line.title == "memgate demo: memory regression (34 findings)"
    heading = (
        "Kept alive by shop.views._page_cache (dict, +5,000 items, 1.00 per request),"
        " added to at shop/views.py:21 in render_page:"
    )
    assert line.message.splitlines()[0] == heading
    assert line.message.count("grows 99 B/r") == 5
    assert line.message.endswith("\n- and 29 more here: see the job summary")
    (adding,) = [n for n in notes if (n.file, n.line) == ("shop/views.py", 21)]
    assert (adding.level, adding.message) == (
        "error",
        "keeps the leak alive: shop.views._page_cache grows 1.00 per request"
        " (the allocation is at shop/views.py:20)",
    )
    summary = render(report, Format.MARKDOWN)
    first = summary.split("\n| |")[0]
    assert "added to at shop/views.py:21 in render\\_page**." in first
    table, grouped = summary.split("\n\n**Kept alive by `shop.views._page_cache`")[:2]
    assert "grows 99 B/r" not in table  # no site is a finding of its own
    assert grouped.startswith(
        " (dict, +5,000 items, 1.00 per request), added to at shop/views.py:21 in"
        " render\\_page**: 34 growing sites.\n"
    )
    shown, folded = grouped.split("<details><summary>and 29 more</summary>")
    assert shown.count("grows 99 B/r") == 5 and folded.count("grows 99 B/r") == 29
    terminal = render(report, Format.TERMINAL, width=300)
    assert "added to at shop/views.py:21 in render_page" in terminal


def test_with_two_keepers_a_site_goes_to_the_one_it_adds_to_or_whose_module_it_is_in() -> None:
    lib = Frame("render", "/venv/lib/python3.11/site-packages/django/template/base.py", 9)
    views = (Frame("list_items", "shop/views.py", 20),)
    session = (Frame("login", "shop/sessions.py", 40),)
    through = (
        Frame("touch", "shop/sessions.py", 44),
        lib,
        Frame("render_page", "shop/views.py", 21),
    )
    other = (Frame("helper", "shop/util.py", 5),)
    report = _sites_report([views, session, through, other], (CACHE, STORE))
    _, groups = by_keeper(report.result, report.decision.findings)
    assert [(g.keeper, [f.where for f in g.findings]) for g in groups] == [
        (CACHE, [views[0], through[0]]),  # through: its stack passes the line adding to it
        (STORE, [session[0]]),
        (None, [other[0]]),
    ]
    summary = render(report, Format.MARKDOWN)
    assert (
        "**Kept alive by `shop.sessions._store` (list, +800 items, 0.16 per request)**:" in summary
    )
    assert "**Kept alive by nothing the census named**: 1 growing site." in summary
    notes = {(n.file, n.line): n.message for n in annotate(report, "/repo")}
    assert notes[("shop/util.py", 5)].startswith("Kept alive by nothing the census named:\n- ")
    assert notes[("shop/sessions.py", 40)].startswith("Kept alive by shop.sessions._store")
    assert "(the allocation is at shop/views.py:20)" in notes[("shop/views.py", 21)]


def test_without_a_keeper_site_findings_stay_findings_of_their_own() -> None:
    views = [(Frame(f"render_{n}", "shop/views.py", 20 + n),) for n in range(3)]
    for retained in ((), (Retained("type", "dict", "dict", 10, 20, 0.001, 4833),)):
        report = _sites_report(views, ())
        if retained:  # a census that named nothing grown enough to group by
            nothing = Retention(
                (), report.result.retention.censuses if report.result.retention else (), 1.0
            )
            report = dataclasses.replace(
                report, result=dataclasses.replace(report.result, retention=nothing)
            )
        own, groups = by_keeper(report.result, report.decision.findings)
        assert (own, groups) == (report.decision.findings, ())
        summary = render(report, Format.MARKDOWN)
        assert "Kept alive by" not in summary
        assert summary.split("\n### ")[0].count("grows 99 B/r") == 3
        notes = annotate(report, "/repo")
        assert not any("ept alive" in n.message for n in notes)
        assert [n.line for n in notes if n.file == "shop/views.py"] == [20, 21, 22]


def test_an_adding_line_that_is_the_allocations_is_annotated_once() -> None:
    """The demo's planted leak allocates and appends on one line."""
    place = SourceLine("examples/demo_service/app.py", 54, "__call__")
    report = _with_retention(leak_report(), "examples.demo_service.app._retained")
    retention = report.result.retention
    assert retention is not None
    first = dataclasses.replace(retention.retained[0], adds=(place,))
    retention = dataclasses.replace(retention, retained=(first, *retention.retained[1:]))
    report = dataclasses.replace(
        report, result=dataclasses.replace(report.result, retention=retention)
    )
    placed = [n for n in annotate(report, "/repo") if n.file]
    assert [(n.file, n.line) for n in placed] == [("examples/demo_service/app.py", 54)]
    message = placed[0].message
    assert "keeps the leak alive" not in message
    assert message.count("ept alive by examples.demo_service.app._retained") == 1
    assert (
        "Kept alive by examples.demo_service.app._retained (list, +4,949 items, 0.99 per"
        " request), added to at examples/demo_service/app.py:54 in __call__:\n- " in message
    )
