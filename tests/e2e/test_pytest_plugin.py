"""The pytest plugin as a user runs it: pytest in a subprocess, the plugin loaded from
its ``pytest11`` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import DEMO_SCENARIO, REPO, planted_leak_line

pytestmark = pytest.mark.e2e

FUNCTION_TESTS = """
import functools, itertools

KEPT = []

def test_leaks_100_bytes_per_call(memgate_calls):
    memgate_calls(lambda: KEPT.append(bytes(67)))

@functools.lru_cache(maxsize=64)
def render(n):
    return "item %d" % n * 3

NUMBERS = itertools.cycle(range(64))

def test_fills_a_bounded_cache_once(memgate_calls):
    result = memgate_calls(lambda: render(next(NUMBERS)), calls=200)
    assert result.growth_per_call < 1
"""


def pytest_run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """pytest as a user runs it: outside GitHub Actions unless ``env`` says otherwise."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**base, **(env or {})},
    )


def usage_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of pytest's usage error: exit code 4, no test run, no traceback
    (pytest may add its usage line and where it looked for its settings)."""
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""
    said = done.stderr.strip().splitlines()
    (line,) = [line for line in said if not line.startswith(("ERROR: usage:", "  "))]
    return line


def test_function_level_leak_fails_and_bounded_cache_passes(tmp_path: Path) -> None:
    (tmp_path / "test_functions.py").write_text(FUNCTION_TESTS)
    done = pytest_run("test_functions.py", cwd=tmp_path)
    assert "1 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    failure = done.stdout[done.stdout.index("test_leaks_100_bytes_per_call") :]
    assert "memory grows with calls" in failure
    assert "keeps 10" in failure and "B per call" in failure  # 100-odd bytes per call
    assert "test_functions.py:7 in <lambda>" in failure


def test_under_pytest_memray_the_calls_tests_are_skipped_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "test_functions.py").write_text(FUNCTION_TESTS + "\ndef test_plain():\n    pass\n")
    done = pytest_run("test_functions.py", "--memray", "-rs", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped" in done.stdout, done.stdout
    assert "memray, which allows one tracker per process" in " ".join(done.stdout.split())
    assert "No more than one Tracker" not in done.stdout + done.stderr


def test_scenarios_are_collected_only_with_the_option(tmp_path: Path) -> None:
    without = pytest_run(str(DEMO_SCENARIO), "--collect-only", cwd=REPO)
    # Without --memgate nothing collects a .toml file: pytest finds no test in it.
    assert without.returncode == 4, without.stdout
    assert "not found" in without.stderr and "demo.toml::demo" not in without.stdout
    with_option = pytest_run("--memgate", "--collect-only", cwd=REPO)
    assert with_option.returncode == 0, with_option.stdout + with_option.stderr
    collected = with_option.stdout.splitlines()
    # Every scenario at the top of scenarios/, none from below it (soak stays out).
    assert [line for line in collected if line.startswith("scenarios/")] == [
        f"scenarios/{path.name}::{path.stem}"
        for path in sorted((REPO / "scenarios").glob("*.toml"))
    ]
    assert "scenarios/demo.toml::demo" in collected
    assert not any(line.startswith("scenarios/soak/") for line in collected)


def test_scenario_passes_against_its_baseline_and_fails_with_a_leak(tmp_path: Path) -> None:
    """The committed baselines/demo.json: a clean run passes, a leaking one fails and its
    failure text is the findings table, naming the planted line."""
    assert (REPO / "baselines" / "demo.json").is_file()
    common = ("--memgate", str(DEMO_SCENARIO), "--memgate-out", str(tmp_path / "out"))
    common += ("--memgate-requests", "3000")
    clean = pytest_run(*common, cwd=REPO)
    assert "1 passed" in clean.stdout, clean.stdout + clean.stderr
    leak = pytest_run(*common, "--memgate-env", "DEMO_LEAK_BYTES=256", cwd=REPO)
    assert "1 failed" in leak.stdout, leak.stdout + leak.stderr
    assert "memgate check: demo: FAIL" in leak.stdout
    assert f"examples/demo_service/app.py:{planted_leak_line()} in __call__" in leak.stdout
    assert "heap growth per request" in leak.stdout
    assert "Traceback" not in leak.stdout


PULL_REQUEST = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request"}


def test_recording_in_a_pull_request_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    """As ``memgate check --record``: a pull request's workflow must not write baselines."""
    (tmp_path / "test_functions.py").write_text(FUNCTION_TESTS)
    args = ("test_functions.py", "--memgate-baselines", "baselines", "--memgate-record")
    done = pytest_run(*args, cwd=tmp_path, env=PULL_REQUEST)
    assert usage_error(done) == (
        "ERROR: --memgate-record is refused in a pull request's workflow:"
        " it must not write baselines"
    )
    assert not (tmp_path / "baselines").exists()
    # Comparing with the histories is fine in a pull request; only recording is refused.
    compared = pytest_run(*args[:-1], "-k", "bounded", cwd=tmp_path, env=PULL_REQUEST)
    assert "1 passed" in compared.stdout, compared.stdout + compared.stderr


NEVER_RETURNS = """
import time

def test_sleeps_forever(memgate_calls):
    memgate_calls(lambda: time.sleep(3600), calls=10, rounds=6, time_limit=0.5)

def test_spins_forever_and_swallows_exceptions(memgate_calls):
    def spin():
        while True:
            try:
                time.sleep(0.01)
            except Exception:
                pass
    memgate_calls(spin, calls=10, rounds=6)
"""


def test_a_function_that_never_returns_fails_at_its_time_limit(tmp_path: Path) -> None:
    """The keyword's limit, then the option's: each test fails with one line naming it."""
    (tmp_path / "test_hangs.py").write_text(NEVER_RETURNS)
    started = time.monotonic()
    done = pytest_run("test_hangs.py", "--memgate-calls-time-limit", "1s", cwd=tmp_path)
    assert time.monotonic() - started < 60
    assert "2 failed" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    failures = [line for line in done.stdout.splitlines() if line.startswith("memgate:")]
    assert failures == [
        "memgate: error: the calls did not finish within their time limit of 0.5 s"
        " (time_limit=, or pytest's --memgate-calls-time-limit): 0 of 7 rounds done",
        "memgate: error: the calls did not finish within their time limit of 1 s"
        " (time_limit=, or pytest's --memgate-calls-time-limit): 0 of 7 rounds done",
    ]


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("NOEQUALS", "expected KEY=VALUE, got 'NOEQUALS'"),
        ("=value", "expected KEY=VALUE, got '=value'"),
    ],
)
def test_an_env_value_that_is_no_name_and_value_is_a_usage_error(
    tmp_path: Path, given: str, problem: str
) -> None:
    done = pytest_run("--memgate", str(DEMO_SCENARIO), "--memgate-env", given, cwd=tmp_path)
    assert usage_error(done) == f"ERROR: --memgate-env: {problem}"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("soon", "not a duration: 'soon' (seconds, or a number with ms, s, m or h)"),
        ("-5", "not a duration: '-5' (seconds, or a number with ms, s, m or h)"),
    ],
)
def test_a_time_limit_that_is_no_duration_is_a_usage_error(
    tmp_path: Path, given: str, problem: str
) -> None:
    done = pytest_run("--memgate-calls-time-limit", given, cwd=tmp_path)
    assert usage_error(done) == f"ERROR: --memgate-calls-time-limit: {problem}"


HOSTILE_NAME = """
KEPT = []

def grow():
    KEPT.append(bytes(200))

# A function whose name sets the terminal's title (OSC 0) where it is printed raw.
grow = type(grow)(grow.__code__.replace(co_name="grow\\x1b]0;pwned\\x07"), globals())

def test_leaks_through_a_hostile_name(memgate_calls):
    memgate_calls(grow)
"""


def test_a_failing_calls_test_prints_the_measured_codes_names_escaped(tmp_path: Path) -> None:
    """Issue 25, case 8's gap: the plugin's failure text went to pytest's own writer
    raw; names from the measured code reach the terminal escaped, as memgate's do."""
    (tmp_path / "test_hostile.py").write_text(HOSTILE_NAME)
    done = pytest_run("test_hostile.py", cwd=tmp_path)
    assert "1 failed" in done.stdout, done.stdout + done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert "grow\\x1b]0;pwned\\x07" in done.stdout
