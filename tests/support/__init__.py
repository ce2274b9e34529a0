"""What several test modules share; test modules never import each other.

Import from here (``from tests.support import make_result``); each topic has a module:

- ``repo``: the repository's files tests run (the demo scenario and its planted leak)
  and a minimal scenario.
- ``values``: hand-made values for unit tests (a run result, a baseline run summary).
- ``command``: the installed ``memgate`` command as a subprocess (end-to-end tests).
- ``runs``: runs of small throwaway services (integration tests), runs that must fail,
  and the processes a run left behind.
- ``actions``: GitHub Actions as the runner sees it (workflow commands, output files, a
  simulated step).
"""

from __future__ import annotations

from tests.support.actions import actions_step, parse_command, read_file_commands
from tests.support.command import MEMGATE, memgate, one_line_error
from tests.support.repo import DEMO_APP, DEMO_SCENARIO, MINIMAL, REPO, planted_leak_line
from tests.support.runs import SERVER, leftovers, run_file, scenario_file, server
from tests.support.values import make_result, make_summary

__all__ = [
    "DEMO_APP",
    "DEMO_SCENARIO",
    "MEMGATE",
    "MINIMAL",
    "REPO",
    "SERVER",
    "actions_step",
    "leftovers",
    "make_result",
    "make_summary",
    "memgate",
    "one_line_error",
    "parse_command",
    "planted_leak_line",
    "read_file_commands",
    "run_file",
    "scenario_file",
    "server",
]
