"""The HTML report opened in a real headless Chromium: no errors, nothing fetched from
the network, and the curves drawn.

Needs Debian's ``chromium`` (``.ci/run`` installs it). Without it the test is skipped,
unless ``MEMGATE_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from gate.model import Frame
from gate.report.formats import Format, render
from gate.report.report import Report
from gate.scenario import BudgetSpec
from gate.summary import History, summarize
from gate.verdict import decide
from tests.support import NOW, leak_report

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("MEMGATE_REQUIRE_BROWSER"):
            pytest.fail("MEMGATE_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("MEMGATE_REQUIRE_BROWSER"):
            pytest.fail("MEMGATE_REQUIRE_BROWSER is set but playwright is not installed")
        pytest.skip("playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def test_a_failing_report_with_long_names_fits_a_1280_px_window(browser, tmp_path: Path) -> None:
    report = leak_report()
    old = report.result.sites[0].user_frame
    assert old is not None
    long = Frame(
        "handle_" + "very_long_function_name_" * 6,
        "examples/" + "/".join(["a_rather_deep_package_folder"] * 8) + "/module.py",
        old.line,
    )
    sites = tuple(
        dataclasses.replace(s, user_frame=long, stack=(long, *s.stack[1:]))
        if s.user_frame == old
        else s
        for s in report.result.sites
    )
    result = dataclasses.replace(report.result, sites=sites)
    current = summarize(result, now=NOW)
    decision = decide(current, History(2, "demo", report.decision.compared), BudgetSpec())
    page_file = tmp_path / "report.html"
    page_file.write_text(render(Report(result, current, decision), Format.HTML))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_file.as_uri())
    assert decision.verdict.value == "fail"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the page is {width} px wide in a 1280 px window"
    assert page.get_by_text("module.py").first.is_visible()
    # The charts fill the column (they were about 550 px wide), and no table spills past
    # it (the findings' did, past the headings' rule).
    chart = page.evaluate("document.querySelector('figure svg').getBoundingClientRect().width")
    assert chart >= 900, chart
    column = page.evaluate("document.querySelector('h2').getBoundingClientRect().right")
    rights = page.evaluate(
        "[...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right)"
    )
    assert max(rights) <= column + 1, (rights, column)


def test_report_opens_without_errors_and_draws_both_curves(browser, tmp_path: Path) -> None:
    page_file = tmp_path / "report.html"
    page_file.write_text(render(leak_report(), Format.HTML))
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "request",
        lambda r: None if r.url.startswith("file:") else problems.append(f"fetched {r.url}"),
    )
    page.goto(page_file.as_uri())
    assert problems == []
    assert page.title() == "memgate demo: FAIL"
    charts = page.locator("svg:not(.trend)")
    assert charts.count() == 2
    for i in range(2):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 500 and box["height"] > 200
        # This run and the baseline: two lines of many points each, inside the chart.
        lines = chart.locator("polyline")
        assert lines.count() == 2
        for j in range(2):
            line = lines.nth(j).bounding_box()
            assert line is not None and line["width"] > 300
            assert box["y"] <= line["y"] and line["y"] + line["height"] <= box["y"] + box["height"]
        # The history's range of its three runs, and its limits on the peak and the growth.
        drawn = [chart.locator("polygon.history"), *chart.locator("path.limit").all()]
        assert len(drawn) == 3
        for part in drawn:
            at = part.bounding_box()
            assert at is not None and at["width"] > 300
            assert box["y"] <= at["y"] and at["y"] + at["height"] <= box["y"] + box["height"]
    # The trend across the history: the three runs and this one, inside their chart, the
    # slanted commits below it inside the SVG.
    trend = page.locator("svg.trend")
    box = trend.bounding_box()
    assert box is not None and box["width"] > 500
    marks = trend.locator("line.interval").all() + trend.locator("g.run text").all()
    assert len(marks) == 8
    for mark in marks:
        at = mark.bounding_box()
        assert at is not None
        assert box["x"] <= at["x"] and at["x"] + at["width"] <= box["x"] + box["width"]
        assert box["y"] <= at["y"] and at["y"] + at["height"] <= box["y"] + box["height"]
    assert page.get_by_text("examples/demo_service/app.py:54 in __call__").first.is_visible()
    # Nothing wider than the window (a long file name, a deep stack): no scrollbar.
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    if os.environ.get("MEMGATE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["MEMGATE_KEEP_SCREENSHOT"])
