from __future__ import annotations

from gate.report.terminal import render_merged, render_run
from tests.support import ENV, make_result, merged_three


def squeeze(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def test_run_summary_names_the_shape_and_the_leaking_line() -> None:
    lines = squeeze(render_run(make_result(leak_per_request=100), width=140))
    assert lines[0] == "memgate run: demo"
    assert (
        "load 1,000 requests (200 warm-up, 800 measured), 0 failed; 100 req/s measured;"
        " stopped by requests" in lines
    )
    assert "shape LEAK" in lines
    assert (
        "steady from 200 requests: no slowdown after the warm-up: the steady state starts there"
        in lines
    )
    assert (
        "heap leak: 976.6 KiB at steady start -> 1.0 MiB at end; grows 100.0 bytes per request"
        in lines
    )
    assert "capture capture.bin: 50.0 MiB, 900 snapshots, read in 4.2 s" in lines
    assert "1 100.0 B/request [98.5, 102.0] 1.00 78.1 KiB app.py:54 in __call__" in lines


def test_run_summary_lists_only_growing_sites() -> None:
    text = render_run(make_result(leak_per_request=0), width=140)
    assert "shape FLAT" in squeeze(text)
    assert "no allocation site grew steadily through the steady state" in text
    assert "json" not in text


def test_names_from_the_measured_code_are_not_markup() -> None:
    """A function named like rich markup or an emoji code prints as it is (a ``[/]``
    used to raise rich's MarkupError: an internal error instead of a report)."""
    import dataclasses

    from gate.model import Frame

    result = make_result(leak_per_request=100)
    hostile = Frame("[/] [bold]x :smile:", "app.py", 54)
    leak = dataclasses.replace(result.sites[0], user_frame=hostile, stack=(hostile,))
    result = dataclasses.replace(
        result,
        scenario=dataclasses.replace(result.scenario, name="d[/]emo"),
        sites=(leak, *result.sites[1:]),
    )
    lines = squeeze(render_run(result, width=160))
    assert lines[0] == "memgate run: d[/]emo"
    assert "1 100.0 B/request [98.5, 102.0] 1.00 78.1 KiB app.py:54 in [/] [bold]x :smile:" in lines


def test_terminal_summary() -> None:
    text = render_merged(merged_three(), width=400)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    assert lines[0] == "memgate merge: FAIL (3 scenarios: 1 fail, 1 flag, 1 pass)"
    rows = [line for line in lines if line.startswith(("demo ", "soak ", "api "))]
    assert rows[:3] == [
        f"demo {ENV} FAIL 7 heap growth per request 256.7 B/request, +256.7 B/request"
        " examples/demo_service/app.py:54 in __call__",
        "soak Darwin-arm64-py3.12 FLAG 1 this run's load or profile settings (scenario file or"
        " overrides) differ from 3 of the 3 baseline runs': figures that depend on them may"
        " not compare",
        f"api {ENV} PASS 0",
    ]
    # Then the findings of each scenario that did not pass, and only those.
    assert f"demo on {ENV}: FAIL (compared with 3 baseline runs; art/demo/report.json)" in lines
    assert any(line.startswith("soak on Darwin-arm64-py3.12: FLAG") for line in lines)
    assert not any(line.startswith("api on") for line in lines)


def test_a_library_site_is_shown_from_its_import_root_with_its_distribution() -> None:
    """It read ``/srv/venv/lib/python3.11/site-packages/gunicorn/util.py:513``."""
    import dataclasses

    from gate.model import Frame

    result = make_result(leak_per_request=100)
    library = Frame("http_date", "/srv/venv/lib/python3.11/site-packages/gunicorn/util.py", 513)
    site = dataclasses.replace(result.sites[0], stack=(library,), user_frame=None)
    provenance = dataclasses.replace(
        result.provenance,
        packages={"gunicorn": ["gunicorn"]},
        distributions={"gunicorn": "27.0.1"},
    )
    shown = dataclasses.replace(result, sites=(site,), provenance=provenance)
    text = " ".join(render_run(shown, width=200).split())
    assert "gunicorn/util.py:513 in http_date (gunicorn 27.0.1, not user code)" in text
    assert "site-packages" not in text


def test_a_sampled_leak_no_python_site_holds_points_to_memrays_native_frames() -> None:
    """Sampled, a leak in native code's malloc grows the counted heap, and no site of
    Python's allocators grows: the reports say where its frames are to be had."""
    import dataclasses

    from gate.report.parts import no_sites_text
    from gate.shapes import Shape

    result = make_result(256)
    sampled = dataclasses.replace(
        result, sites=(), capture=dataclasses.replace(result.capture, mode="sampled")
    )
    assert sampled.analysis.shape is Shape.LEAK
    said = no_sites_text(sampled)
    assert 'capture = "live" and native = true' in said and "native code" in said
    assert 'capture = "live" and native = true' in " ".join(squeeze(render_run(sampled)))
    traced = dataclasses.replace(sampled, capture=result.capture)
    assert no_sites_text(traced) == "No allocation site grew steadily through the steady state."


def test_a_sampled_leak_its_growing_sites_explain_little_of_still_points_to_native_frames() -> None:
    """A site growing a little beside a native leak (the C extension's test, once in CI)
    must not hide it: the sites explain under half the heap's growth, the rest is said."""
    import dataclasses

    from gate.report.parts import growing_sites, unexplained_text

    result = make_result(256)
    sampled = dataclasses.replace(
        result, capture=dataclasses.replace(result.capture, mode="sampled")
    )
    heap = sampled.analysis.heap.trend.slope
    grown = growing_sites(sampled.sites, len(sampled.sites))
    assert grown and sum(s.trend.slope for s in grown) >= heap / 2  # the sites explain it
    assert unexplained_text(sampled) == ""
    site = grown[0]
    small = dataclasses.replace(
        site, trend=dataclasses.replace(site.trend, slope=heap / 10, low=heap / 20, high=heap / 5)
    )
    native = dataclasses.replace(sampled, sites=(small,))
    said = unexplained_text(native)
    assert said.startswith(f"These sites explain {heap / 10:,.1f} of the heap's {heap:,.1f}")
    assert 'capture = "live" and native = true' in said
    assert 'capture = "live" and native = true' in " ".join(squeeze(render_run(native)))
    traced = dataclasses.replace(native, capture=result.capture)
    assert unexplained_text(traced) == ""
