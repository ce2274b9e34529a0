"""memgate's agent loaded as a module into the test's own process, to call its functions
directly (the service runs it by path, as ``python memgate_agent.py TARGET``)."""

from __future__ import annotations

import importlib.util
from typing import Any

from gate.service.interpreter import AGENT


def load_agent(name: str = "memgate_agent_under_test") -> Any:
    """A fresh copy of the agent's module (its state is its own)."""
    spec = importlib.util.spec_from_file_location(name, AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
