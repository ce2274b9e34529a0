"""Collects the figures benchmarks measure and prints them as one table at the end."""

from __future__ import annotations

import pytest

_FIGURES: list[tuple[str, str]] = []


@pytest.fixture
def figure():
    """``figure(name, text)`` records one line for the closing table."""

    def record(name: str, text: str) -> None:
        _FIGURES.append((name, text))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("memgate figures")
    width = max(len(name) for name, _ in _FIGURES)
    for name, text in _FIGURES:
        terminalreporter.write_line(f"{name:<{width}}  {text}")
