"""A leak in a C extension, under the real memray with native traces: the extension is
built by the test (``tests/fixtures/native_service/leaky.c``), served by a standard-library
HTTP server over 127.0.0.1, and driven by real Locust, read live and from a capture file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gate.result import read_result
from tests.support import build_leaky, memgate

pytestmark = pytest.mark.integration

LEAK_BYTES = 256


@pytest.fixture(scope="module", params=["live", "file"])
def native_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp(f"native-{request.param}")
    library = build_leaky(folder)
    out = folder / "out"
    done = memgate(
        "run", "scenario.toml", "--out", str(out), "--capture", request.param, "--quiet",
        cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out, library, done


def _calling_line() -> int:
    app = (Path(__file__).parents[1] / "fixtures" / "native_service" / "app.py").read_text()
    return next(n for n, line in enumerate(app.splitlines(), 1) if "leaky.leak(" in line)


def test_the_extensions_leak_is_named_by_its_native_function_and_library(native_run) -> None:
    out, library, _ = native_run
    result = read_result(out / "result.json")
    top = result.sites[0]
    # Within 2% either way: on the retained heap's few points the interval is narrow
    # (256.5 [256.2, 256.9] on a fresh clone's CI run).
    assert top.trend.low * 0.98 <= LEAK_BYTES <= top.trend.high * 1.02
    assert top.frame is not None and top.in_user_code
    frame = top.frame
    assert (frame.file, frame.line, frame.function) == ("app.py", _calling_line(), "do_GET")
    native = top.native_frame
    assert native is not None
    assert native.function == "keep" and native.library == str(library) and native.extension
    assert native.file.endswith("leaky.c") and native.line > 0  # built with -g
    # The rest of the native path, innermost first: the extension's, then the interpreter's.
    functions = [f.function for f in top.native]
    assert functions[:2] == ["keep", "leak"]
    assert not any(f.extension for f in top.native[2:])


def test_every_report_shows_the_native_frame_under_the_python_line(native_run) -> None:
    out, library, done = native_run
    shown = f"keep in {library.name}"
    assert shown in done.stdout
    terminal = done.stdout.splitlines()
    at = next(i for i, line in enumerate(terminal) if f"app.py:{_calling_line()} in do_GET" in line)
    assert "native: " + shown in terminal[at + 1]
    result = str(out / "result.json")
    empty = str(out / "no-baselines")
    for form, text in (
        ("markdown", f"native: `{shown} (leaky.c:"),
        ("html", f"<code>{shown} (leaky.c:"),
        ("github", f"(native: {shown} (leaky.c:"),
    ):
        report = memgate("report", result, "--format", form, "--baselines", empty)
        assert text in report.stdout, (form, report.stdout[-2000:])
    doc = json.loads(memgate("report", result, "--format", "json", "--baselines", empty).stdout)
    site = doc["sites"][0]
    assert site["native_frame"]["function"] == "keep" and site["native_frame"]["extension"]
    assert site["native_frame"]["library"] == str(library)
    assert [f["function"] for f in site["native"][:2]] == ["keep", "leak"]


def test_a_stripped_extensions_leak_is_named_by_its_library(tmp_path: Path) -> None:
    """Built as Rust-built wheels ship (``strip --strip-all``): memray names none of its
    functions, yet the line under the Python one names the library."""
    library = build_leaky(tmp_path, debug=False, stripped=True)
    out = tmp_path / "out"
    done = memgate(
        "run", "scenario.toml", "--out", str(out), "--capture", "live", "--quiet",
        "--requests", "1500", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    top = read_result(out / "result.json").sites[0]
    assert top.frame is not None and top.frame.line == _calling_line()
    native = top.native_frame
    assert native is not None and native.library == str(library) and not native.named
    terminal = done.stdout.splitlines()
    at = next(i for i, line in enumerate(terminal) if f"app.py:{_calling_line()} in do_GET" in line)
    assert terminal[at + 1].strip() == f"native: in {library.name} (no symbols)"


def test_sampled_by_default_the_extensions_leak_fails_and_points_to_its_frames(
    tmp_path: Path,
) -> None:
    """The same service with no ``native = true``: sampled, as by default. The extension's
    malloc is in the counted heap, so the leak fails, though no site of Python's
    allocators grows; the reports say that memray's native traces name its frames."""
    build_leaky(tmp_path)
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(scenario.read_text().replace("native = true", ""))
    out = tmp_path / "out"
    done = memgate("check", "scenario.toml", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    result = read_result(out / "scenario" / "result.json")
    assert result.capture.mode == "sampled" and result.analysis.shape.value == "leak"
    trend = result.analysis.heap.trend
    assert trend.low <= LEAK_BYTES * 1.5 and trend.high >= LEAK_BYTES * 0.7, trend
    assert not any(s.trend.slope > LEAK_BYTES / 4 for s in result.sites)
    assert 'capture = "live" and native = true' in " ".join(done.stdout.split())
