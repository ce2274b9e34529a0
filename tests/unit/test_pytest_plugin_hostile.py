"""The pytest plugin's guards against bad options (gate.pytest_plugin), without pytest in
a subprocess: what a user sees of them is in tests/e2e/test_pytest_plugin.py."""

from __future__ import annotations

import pytest

from gate.pytest_plugin import _env_pair, _refuse_recording_in_pull_request, _time_limit


def test_env_values_are_pairs_and_a_bad_one_is_a_usage_error() -> None:
    assert _env_pair("A=b=c") == ("A", "b=c")
    assert _env_pair("A=") == ("A", "")
    for bad in ("NOEQUALS", "=value", ""):
        said = f"--memgate-env: expected KEY=VALUE, got '{bad}'"
        with pytest.raises(pytest.UsageError, match=said):
            _env_pair(bad)


def test_time_limits_are_durations_and_zero_is_none() -> None:
    assert _time_limit("90") == 90.0
    assert _time_limit("1.5m") == 90.0
    assert _time_limit("500ms") == 0.5
    assert _time_limit("0") is None
    for bad in ("soon", "-5", "inf", ""):
        with pytest.raises(pytest.UsageError, match="--memgate-calls-time-limit: not a duration"):
            _time_limit(bad)


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target"])
def test_recording_in_a_pull_request_is_refused(
    monkeypatch: pytest.MonkeyPatch, event: str
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", event)
    with pytest.raises(pytest.UsageError) as refused:
        _refuse_recording_in_pull_request(True)
    assert str(refused.value) == (
        "--memgate-record is refused in a pull request's workflow: it must not write baselines"
    )
    _refuse_recording_in_pull_request(False)  # comparing is fine


def test_recording_elsewhere_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    _refuse_recording_in_pull_request(True)
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")  # not in Actions: no workflow
    _refuse_recording_in_pull_request(True)
