"""memgate inside pytest (registered through the ``pytest11`` entry point).

Off unless asked for:

- ``pytest --memgate`` collects scenario files (``scenarios/*.toml``, not its subfolders,
  or the ``.toml`` paths given) as test items: each runs its scenario, compares it with its baseline
  history like ``memgate check`` and fails with the findings as its failure text.
  ``--memgate-baselines DIR``, ``--memgate-record``, ``--memgate-env KEY=VALUE``,
  ``--memgate-requests N`` and ``--memgate-out DIR`` mean what ``check``'s options do;
  ``--memgate-record`` is refused in a pull request's workflow, as ``check --record`` is.
- The ``memgate_calls`` fixture (always available) measures a function called many times
  under memray and fails the test when it keeps memory per call; with
  ``--memgate-baselines`` it also fails when the growth per call or the peak regressed
  against that test's recorded history (``--memgate-record`` records it). Its calls
  are stopped after ``--memgate-calls-time-limit`` (default 60 s; ``0``: none).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.check import DEFAULT_OUT
from gate.errors import ExitCode, MemgateError, error_text, printable
from gate.units import seconds

DEFAULT_SCENARIOS = "scenarios"
DEFAULT_CALLS_TIME_LIMIT_S = 60.0
"""How long ``memgate_calls``' calls may take, all rounds: a function that never returns
would otherwise hold the test session forever."""
TAKEN = pytest.StashKey[dict[str, Path]]()
"""The scenarios checked in this session, by name: two of one name are refused."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memgate", "memory regression gate")
    group.addoption(
        "--memgate",
        action="store_true",
        help="collect scenario files (scenarios/*.toml, or .toml paths given) as tests",
    )
    group.addoption(
        "--memgate-baselines",
        type=Path,
        default=None,
        help="folder of baseline histories (scenarios: default baselines; function"
        " tests are compared only when this is given)",
    )
    group.addoption(
        "--memgate-record",
        action="store_true",
        help="record runs and function measurements that did not fail in the histories",
    )
    group.addoption(
        "--memgate-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the scenarios' services (repeatable)",
    )
    group.addoption("--memgate-requests", type=int, help="measured requests per scenario")
    group.addoption(
        "--memgate-out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for the scenarios' results and reports (default: memgate-out)",
    )
    group.addoption(
        "--memgate-calls-time-limit",
        default=str(DEFAULT_CALLS_TIME_LIMIT_S),
        metavar="SECONDS",
        help="how long memgate_calls' calls may take before the test fails"
        f" (default: {DEFAULT_CALLS_TIME_LIMIT_S:g}s; 0: no limit)",
    )


def _env_pair(text: str) -> tuple[str, str]:
    """``--memgate-env``'s value as ``check --env``'s: a bad one is pytest's usage error
    (argv is parsed by pytest; this only reads the value it kept)."""
    from gate.check import parse_env_pair

    try:
        return parse_env_pair(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--memgate-env: {exc}") from None


def _time_limit(text: str) -> float | None:
    """``--memgate-calls-time-limit``'s value in seconds; ``0`` is no limit (for a
    debugger, say)."""
    try:
        return seconds(text) or None
    except ValueError as exc:
        raise pytest.UsageError(f"--memgate-calls-time-limit: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "memgate_scenario: a scenario file run as a test by --memgate"
    )
    _refuse_recording_in_pull_request(config.getoption("memgate_record"))
    option = config.option  # the values as given, read once
    option.memgate_env = [_env_pair(text) for text in option.memgate_env]
    option.memgate_calls_time_limit = _time_limit(str(option.memgate_calls_time_limit))
    if not config.getoption("memgate"):
        return
    given = [arg for arg in config.args if arg.split("::")[0].endswith(".toml")]
    if not given:
        # The scenarios/*.toml files themselves: subfolders (soak runs) only when named.
        config.args += [
            str(p) for p in sorted((config.rootpath / DEFAULT_SCENARIOS).glob("*.toml"))
        ]


def _refuse_recording_in_pull_request(record: bool) -> None:
    """As ``memgate check --record``: a pull request's workflow must not write the
    baselines its own change is judged against."""
    from gate import actions

    if record and actions.in_pull_request():
        raise pytest.UsageError(
            "--memgate-record is refused in a pull request's workflow: it must not write baselines"
        )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".toml" or not parent.config.getoption("memgate"):
        return None
    if not _is_scenario(file_path):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


def _is_scenario(path: Path) -> bool:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return path.parent.name == DEFAULT_SCENARIOS  # broken scenario: report it as such
    return isinstance(data.get("service"), dict) or isinstance(data.get("services"), dict)


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        item = ScenarioItem.from_parent(self, name=self.path.stem)
        item.add_marker("memgate_scenario")
        yield item


class ScenarioFailed(Exception):
    """The scenario regressed, or could not be run; the text says why."""


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        from gate import check
        from gate.console import TerminalObserver
        from gate.report.formats import Format
        from gate.report.parts import where
        from gate.report.terminal import render_decision

        config = self.config
        options = check.RunOptions(
            env=tuple(config.getoption("memgate_env")),
            requests=config.getoption("memgate_requests"),
            out=config.getoption("memgate_out"),
            record=config.getoption("memgate_record"),
            baselines=config.getoption("memgate_baselines") or check.DEFAULT_BASELINES,
        )
        try:
            taken = config.stash.setdefault(TAKEN, {})
            scenario = check.open_check(self.path, options, taken)
            taken[scenario.name] = self.path
            with TerminalObserver(scenario, quiet=True) as observer:
                checked = check.check_scenario(scenario, options, observer)
        except MemgateError as exc:
            raise ScenarioFailed(f"memgate: error: {error_text(exc)}") from None
        lines = []
        for done in checked.checked:  # one per service of the scenario
            if done.exit_code == ExitCode.PASS:
                continue
            report = done.report
            lines.append(
                render_decision(report.result.scenario.key, report.decision).splitlines()[0]
            )
            for f in report.decision.findings:
                at = f" (at {where(f.where)})" if f.where else ""
                lines.append(f"  {f.severity.value.upper()}  {f.message}{at}")
            lines.append(f"  report: {done.files[Format.HTML]}")
        if lines:
            raise ScenarioFailed("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):  # names from the measured code
            return printable(str(excinfo.value))
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"memgate scenario {self.name}"


@pytest.fixture
def memgate_calls(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """``memgate_calls(fn, calls=100, rounds=10, warmup_rounds=1, max_growth_per_call=1.0,
    time_limit=60.0)`` calls ``fn()`` ``calls`` times in each of ``warmup_rounds + rounds``
    rounds under memray and fails the test when, after the warm-up rounds, memory grows
    more than ``max_growth_per_call`` bytes per call (its 95% interval above zero), or
    regressed against the test's baseline history. Returns the measurement.

    The calls run in the test's own process (memray tracks the process it starts in), so
    a function that never returns would hold the session forever: the test fails once
    all the calls take more than ``time_limit`` seconds (default 60, or
    ``--memgate-calls-time-limit``; ``None``: no limit)."""
    from gate import calls as callcheck

    if request.config.getoption("memray", default=False):  # pytest-memray's --memray
        pytest.skip(
            "pytest --memray tracks every test with memray, which allows one tracker per"
            " process: memgate_calls measures with its own (run it without --memray)"
        )

    def measure(
        fn: Callable[[], Any],
        *,
        calls: int = 100,
        rounds: int = 10,
        warmup_rounds: int = 1,
        max_growth_per_call: float = 1.0,
        time_limit: float | None = request.config.getoption("memgate_calls_time_limit"),
    ) -> Any:
        try:
            outcome = callcheck.check_calls(
                fn,
                test_id=request.node.nodeid,
                calls=calls,
                rounds=rounds,
                warmup_rounds=warmup_rounds,
                max_growth_per_call=max_growth_per_call,
                time_limit=time_limit,
                capture=tmp_path / f"calls-{_slug(request.node.name)}.bin",
                baselines=request.config.getoption("memgate_baselines"),
                record=request.config.getoption("memgate_record"),
                base=str(request.config.rootpath),
            )
        except MemgateError as exc:  # bad arguments, calls past their time limit
            failure = f"memgate: error: {error_text(exc)}"
            raise pytest.fail.Exception(printable(failure), pytrace=False) from None
        if outcome.problems:  # the measured function's file and name, printable
            pytest.fail(printable(outcome.text()), pytrace=False)
        return outcome.result

    return measure


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]
