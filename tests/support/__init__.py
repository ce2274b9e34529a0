"""What several test modules share; test modules never import each other.

Import from here (``from tests.support import make_result``); each topic has a module:

- ``repo``: the repository's files tests run or read (the demo scenario and its planted
  leak, the fixtures) and a minimal scenario.
- ``values``: hand-made values for unit tests (a run result, a baseline run summary).
- ``command``: the installed ``memgate`` command as a subprocess (end-to-end tests).
- ``runs``: runs of small throwaway services (integration tests), runs that must fail,
  and the processes a run left behind.
- ``reports``: the real 256 B/request leak run as a report, hostile names, and what a
  Markdown renderer sees of a summary.
- ``actions``: GitHub Actions as the runner sees it (workflow commands, output files, the
  lines of a step's output, a simulated step).
"""

from __future__ import annotations

from tests.support.actions import actions_step, parse_command, read_file_commands, runner_lines
from tests.support.command import MEMGATE, memgate, one_line_error
from tests.support.repo import DEMO_APP, DEMO_SCENARIO, FIXTURES, MINIMAL, REPO, planted_leak_line
from tests.support.reports import (
    HOSTILE,
    NOW,
    flat_curve,
    leak_report,
    markdown_structure,
    table_cells,
)
from tests.support.runs import SERVER, leftovers, run_file, scenario_file, server
from tests.support.values import make_result, make_summary

__all__ = [
    "DEMO_APP",
    "DEMO_SCENARIO",
    "FIXTURES",
    "HOSTILE",
    "MEMGATE",
    "MINIMAL",
    "NOW",
    "REPO",
    "SERVER",
    "actions_step",
    "flat_curve",
    "leak_report",
    "leftovers",
    "make_result",
    "make_summary",
    "markdown_structure",
    "memgate",
    "one_line_error",
    "parse_command",
    "planted_leak_line",
    "read_file_commands",
    "run_file",
    "runner_lines",
    "scenario_file",
    "server",
    "table_cells",
]
