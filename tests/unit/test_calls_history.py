"""The histories of function-level memory tests (gate.calls_history)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.calls_history import CallsRun, CallsStore
from gate.errors import InputError


def test_calls_store_refuses_a_broken_history(tmp_path: Path) -> None:
    store = CallsStore(tmp_path)
    run = CallsRun("2026-11-21T00:00:00+00:00", None, "env", 1.0, 0.5, 1.5, 1000, 100, 10)
    store.record("t::a", run)
    store.path("t::a").write_text('{"schema_version": 1, "test_id": "t::a", "runs": [{}]}')
    with pytest.raises(InputError, match=r"runs\.0"):
        store.load("t::a")
