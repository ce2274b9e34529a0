"""memgate's agent loaded as a module into the test's own process, to call its functions
directly (the service runs it by path, as ``python memgate_agent.py TARGET``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from gate.service.interpreter import AGENT


def load_agent(name: str = "memgate_agent_under_test", path: Path = AGENT) -> Any:
    """A fresh copy of the agent's module (its state is its own)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_beside(name: str) -> Any:
    """``gate/agent/NAME.py``, a module the agent loads by path beside it."""
    spec = importlib.util.spec_from_file_location(
        f"memgate_agent_{name}_under_test", AGENT.parent / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
