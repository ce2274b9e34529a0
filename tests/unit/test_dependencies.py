"""Which distributions changed since the compared runs, which one a finding is in, and
the line of the workspace that pins it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from gate.dependencies import Change, changes, normalize, owner, owner_of_path
from gate.model import Frame, NativeFrame, Site
from gate.report.formats import Format, render
from gate.report.github import annotate, pin_line
from gate.report.parts import dependency_notes
from gate.report.report import Report
from gate.scenario import BudgetSpec
from gate.summary import History
from gate.verdict import decide
from tests.support import NOW, leak_report

LIB_FRAME = Frame("remember", "/venv/lib/python3.11/site-packages/somelib/cache.py", 88)
PACKAGES = {"somelib": ["SomeLib"], "yaml": ["PyYAML"], "_cffi_backend": ["cffi"]}


def test_the_versions_that_differ_from_the_newest_compared_run() -> None:
    before = {"SomeLib": "2.4.1", "gone": "1.0", "same": "3"}
    after = {"somelib": "2.5.0", "new_one": "0.1", "same": "3"}
    assert changes(after, [{"somelib": "1.0"}, before, None]) == (
        Change("gone", "1.0", None),
        Change("new-one", None, "0.1"),
        Change("somelib", "2.4.1", "2.5.0"),
    )
    assert changes(after, [None]) == () and changes(None, [before]) == ()
    assert Change("somelib", "2.4.1", "2.5.0").text() == "somelib 2.4.1 → 2.5.0"
    assert normalize("Foo_Bar.baz") == "foo-bar-baz"


def test_a_frame_or_a_path_is_named_by_its_distribution() -> None:
    assert owner(LIB_FRAME, PACKAGES) == "somelib"
    so = Frame("f", "/v/lib/python3.11/site-packages/_cffi_backend.cpython-311-x86_64.so", 1)
    assert owner(so, PACKAGES) == "cffi"
    assert owner(Frame("f", "app.py", 1), PACKAGES) is None
    assert owner(Frame("f", "/usr/lib/python3.11/json/encoder.py", 1), PACKAGES) is None
    assert owner(LIB_FRAME, None) is None
    assert owner_of_path("yaml.reader._cache", PACKAGES) == "pyyaml"
    # A namespace package shared by several: the one that changed, if one did.
    shared = {"opentelemetry": ["opentelemetry-api", "opentelemetry-sdk"]}
    frame = Frame("f", "/v/lib/python3.11/site-packages/opentelemetry/sdk/trace.py", 1)
    assert owner(frame, shared) == "opentelemetry-api"
    assert owner(frame, shared, {"opentelemetry-sdk"}) == "opentelemetry-sdk"


def test_the_pinning_line_of_each_kind_of_file(tmp_path: Path) -> None:
    (tmp_path / "requirements-dev.txt").write_text("pytest>=8\n# somelib\nSomeLib[fast]==2.5.0\n")
    assert pin_line(tmp_path, "somelib") == ("requirements-dev.txt", 3)
    (tmp_path / "requirements.txt").write_text("somelib==2.5.0\n")  # looked in first
    assert pin_line(tmp_path, "somelib") == ("requirements.txt", 1)
    (tmp_path / "requirements.txt").unlink()
    assert pin_line(tmp_path, "pytest") == ("requirements-dev.txt", 1)
    assert pin_line(tmp_path, "absent") is None
    for name, text, line in [
        ("pyproject.toml", '[project]\nname = "svc"\ndependencies = [\n  "somelib>=2.5",\n]\n', 4),
        ("uv.lock", 'version = 1\n\n[[package]]\nname = "somelib"\nversion = "2.5.0"\n', 4),
        ("Pipfile.lock", '{\n  "default": {\n    "somelib": {\n      "version": "==2.5.0"\n', 3),
    ]:
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_text(text)
        assert pin_line(folder, "somelib") == (name, line), name


def _upgraded(report: Report) -> Report:
    """The leak report with its site in somelib's files, whose version went from 2.4.1
    (the compared runs) to 2.5.0 (this run)."""
    result = report.result
    old = result.sites[0].user_frame
    sites = tuple(
        dataclasses.replace(
            s,
            user_frame=None,
            library_frame=LIB_FRAME,
            stack=tuple(LIB_FRAME if f == old else f for f in s.stack),
        )
        if s.user_frame == old
        else s
        for s in result.sites
    )
    provenance = dataclasses.replace(
        result.provenance, distributions={"somelib": "2.5.0", "x": "1"}, packages=PACKAGES
    )
    result = dataclasses.replace(result, sites=sites, provenance=provenance)
    runs = tuple(
        dataclasses.replace(
            r,
            provenance=dataclasses.replace(
                r.provenance, distributions={"somelib": "2.4.1", "x": "1"}
            ),
        )
        for r in report.decision.compared
    )
    from gate.summary import summarize

    current = summarize(result, now=NOW)
    decision = decide(current, History(2, "demo", runs), BudgetSpec())
    return Report(result, current, decision, report.result_path)


def test_a_check_names_the_upgraded_dependency_and_annotates_its_pin(tmp_path: Path) -> None:
    report = _upgraded(leak_report())
    assert [f.where for f in report.decision.findings if f.where] and all(
        f.where == LIB_FRAME for f in report.decision.findings if f.where
    )
    notes = dependency_notes(report)
    assert notes[0].startswith("somelib 2.4.1 → 2.5.0 (") and "in or through it" in notes[0]
    terminal = render(report, Format.TERMINAL, width=200)
    assert "dependencies changed since the compared runs:" in terminal
    assert "somelib 2.4.1 → 2.5.0" in terminal
    assert "somelib 2.4.1 → 2.5.0" in render(report, Format.MARKDOWN)
    assert "somelib 2.4.1 → 2.5.0" in render(report, Format.HTML)
    doc = json.loads(render(report, Format.JSON))
    (changed,) = doc["dependencies_changed"]
    assert (changed["name"], changed["before"], changed["after"]) == ("somelib", "2.4.1", "2.5.0")
    assert changed["findings"] >= 1
    (tmp_path / "requirements.txt").write_text("starlette>=0.37\nsomelib==2.5.0\n")
    placed = [a for a in annotate(report, str(tmp_path)) if a.file]
    assert placed and {(a.file, a.line) for a in placed} == {("requirements.txt", 2)}
    assert all("(in somelib 2.4.1 → 2.5.0)" in a.message for a in placed)
    # Without a file that pins it, the annotation is on the run, still naming it.
    (tmp_path / "requirements.txt").unlink()
    loose = [a for a in annotate(report, str(tmp_path)) if "somelib" in a.message]
    assert loose and all(a.file is None for a in loose)


def test_a_pass_lists_no_dependency() -> None:
    report = _upgraded(leak_report())
    passed = dataclasses.replace(
        report, decision=dataclasses.replace(report.decision, verdict=report.decision.verdict.PASS)
    )
    assert dependency_notes(passed) == []


def test_a_growing_container_in_an_upgraded_dependency_is_counted() -> None:
    from gate.observed import Census, Retained, Retention

    report = _upgraded(leak_report())
    retention = Retention(
        (Retained("container", "somelib.cache._entries", "dict", 10, 5000, 1.0, 1),),
        (Census(1, "start", 1.0, 100, 0.01), Census(1, "end", 9.0, 100, 0.1)),
        5000.0,
    )
    report = dataclasses.replace(
        report, result=dataclasses.replace(report.result, retention=retention)
    )
    assert "1 growing container in it" in dependency_notes(report)[0]


CORE = "/venv/lib/python3.11/site-packages/somelib/_core.cpython-311-x86_64-linux-gnu.so"
NATIVE_CAUSE = (
    "likely cause: somelib 2.4.1 → 2.5.0: the growth is native: no Python line holds it,"
    " and somelib is the only distribution that changed"
)


def _versions(
    report: Report,
    now: dict[str, str],
    then: dict[str, str],
    sites: tuple[Site, ...] | None = None,
) -> Report:
    """``report`` judged again with its distributions ``now``, the compared runs'
    ``then`` (and its sites replaced by ``sites``)."""
    from gate.summary import summarize

    result = report.result
    provenance = dataclasses.replace(result.provenance, distributions=now, packages=PACKAGES)
    result = dataclasses.replace(
        result, provenance=provenance, sites=result.sites if sites is None else sites
    )
    runs = tuple(
        dataclasses.replace(r, provenance=dataclasses.replace(r.provenance, distributions=then))
        for r in report.decision.compared
    )
    current = summarize(result, now=NOW)
    return Report(result, current, decide(current, History(2, "demo", runs), BudgetSpec()))


def _calling_into(report: Report, library: str) -> Report:
    """The top site's user line calling a function of ``library`` (no symbols) that
    allocates what grows."""
    top, *rest = report.result.sites
    native = (
        NativeFrame("<unknown>", "<unknown>", 0, library, True),
        NativeFrame("cfunction_vectorcall_O", "Objects/methodobject.c", 514, "/usr/bin/python3"),
    )
    sites = (dataclasses.replace(top, native=native), *rest)
    return dataclasses.replace(report, result=dataclasses.replace(report.result, sites=sites))


def _pinned(tmp_path: Path, report: Report) -> list[str]:
    """The messages of the annotations on the line of requirements.txt pinning somelib."""
    (tmp_path / "requirements.txt").write_text("starlette>=0.37\nsomelib==2.5.0\notherlib==2\n")
    placed = annotate(report, str(tmp_path))
    return [a.message for a in placed if (a.file, a.line) == ("requirements.txt", 2)]


def test_a_leak_calling_into_a_changed_extension_names_it_the_likely_cause(tmp_path: Path) -> None:
    report = _versions(
        _calling_into(leak_report(), CORE), {"somelib": "2.5.0"}, {"somelib": "2.4.1"}
    )
    # The leak check's finding and the site's, both at the line calling into it.
    assert dependency_notes(report) == [
        "somelib 2.4.1 → 2.5.0 (2 findings in or through it; likely cause: the leak at"
        " examples/demo_service/app.py:54 calls into its extension)"
    ]
    (changed,) = json.loads(render(report, Format.JSON))["dependencies_changed"]
    assert changed["findings"] == 2
    pinned = _pinned(tmp_path, report)
    assert pinned and all(
        "likely cause: somelib 2.4.1 → 2.5.0: the leak at examples/demo_service/app.py:54"
        " calls into its extension" in m
        for m in pinned
    )
    terminal = " ".join(render(report, Format.TERMINAL, width=200).split())
    assert "native: in somelib/_core.cpython-311-x86_64-linux-gnu.so (no symbols)" in terminal
    assert "likely cause: the leak at examples/demo_service/app.py:54" in terminal


def _native_growth(report: Report) -> tuple[Site, ...]:
    """No Python line holds what grows: of the sites, only one that does not grow."""
    return tuple(s for s in report.result.sites if s.trend.low <= 0)[:1]


def test_native_growth_with_one_distribution_changed_blames_its_pin(tmp_path: Path) -> None:
    plain = leak_report()
    report = _versions(plain, {"somelib": "2.5.0"}, {"somelib": "2.4.1"}, _native_growth(plain))
    assert report.native_growth and not report.current.sites
    # The leak check's finding and the history's on RSS growth; the peaks are not growth.
    assert dependency_notes(report) == [
        "somelib 2.4.1 → 2.5.0 (2 findings in or through it; likely cause: the growth is"
        " native: no Python line holds it, and somelib is the only distribution that changed)"
    ]
    (changed,) = json.loads(render(report, Format.JSON))["dependencies_changed"]
    grew = [f for f in report.decision.findings if f.metric.endswith("growth per request")]
    assert len(grew) == 2 and changed["findings"] == 2
    pinned = _pinned(tmp_path, report)
    assert len(pinned) == 1 and pinned[0].count(NATIVE_CAUSE) == len(grew)
    # RSS growing while the heap does not is native growth too.
    assert _shape_only(report).native_growth


def _shape_only(report: Report) -> Report:
    from gate.outcome import Outcome
    from gate.verdict.finding import plain

    shape = plain("shape", Outcome.FLAG, "RSS grows 600 B/request while the heap does not")
    decision = dataclasses.replace(report.decision, findings=(shape,))
    return dataclasses.replace(report, decision=decision)


def test_native_growth_with_several_changed_blames_none(tmp_path: Path) -> None:
    plain = leak_report()
    now, then = {"somelib": "2.5.0", "otherlib": "2"}, {"somelib": "2.4.1", "otherlib": "1"}
    report = _versions(plain, now, then, _native_growth(plain))
    assert dependency_notes(report) == [
        "otherlib 1 → 2",
        "somelib 2.4.1 → 2.5.0",
        "the growth is native: no Python line holds it, and 2 distributions changed"
        " (otherlib, somelib): any of them may hold it",
    ]
    assert all(
        c["findings"] == 0 for c in json.loads(render(report, Format.JSON))["dependencies_changed"]
    )
    assert _pinned(tmp_path, report) == []
    on_run = [a.message for a in annotate(report, str(tmp_path)) if a.file is None]
    assert any("2 distributions changed (otherlib, somelib)" in m for m in on_run)
    assert not any("likely cause" in m for m in on_run)


def test_native_growth_with_none_changed_annotates_no_pin(tmp_path: Path) -> None:
    plain = leak_report()
    report = _versions(plain, {"somelib": "2.5.0"}, {"somelib": "2.5.0"}, _native_growth(plain))
    assert report.native_growth and report.changes == ()
    assert dependency_notes(report) == []
    assert _pinned(tmp_path, report) == []
    assert not any("likely cause" in a.message for a in annotate(report, str(tmp_path)))


def test_a_python_leak_in_user_code_blames_no_unrelated_upgrade(tmp_path: Path) -> None:
    report = _versions(leak_report(), {"somelib": "2.5.0"}, {"somelib": "2.4.1"})
    assert not report.native_growth
    assert dependency_notes(report) == ["somelib 2.4.1 → 2.5.0"]
    (changed,) = json.loads(render(report, Format.JSON))["dependencies_changed"]
    assert changed["findings"] == 0
    assert _pinned(tmp_path, report) == []
    assert not any("likely cause" in a.message for a in annotate(report, str(tmp_path)))
    # The line calls into an extension that did not change: still no blame.
    other = "/venv/lib/python3.11/site-packages/yaml/_yaml.cpython-311-x86_64-linux-gnu.so"
    calling = _versions(
        _calling_into(leak_report(), other), {"somelib": "2.5.0"}, {"somelib": "2.4.1"}
    )
    assert dependency_notes(calling) == ["somelib 2.4.1 → 2.5.0"]
