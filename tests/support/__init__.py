"""What several test modules share; test modules never import each other.

Import from here (``from tests.support import make_result``); each topic has a module:

- ``repo``: the repository's files tests run or read (the demo scenario and its planted
  leak, the fixtures) and a minimal scenario.
- ``values``: hand-made values for unit tests (a run result, a baseline run summary).
- ``curves``: hand-made memory curves, each shape planted after the warm-up, in white or
  autocorrelated noise.
- ``command``: the installed ``memgate`` command as a subprocess (end-to-end tests).
- ``fuzz``: hypothesis settings of the fuzzing tests, and values written as TOML.
- ``runs``: runs of small throwaway services (integration tests), runs that must fail,
  and the processes a run left behind.
- ``reports``: the real 256 B/request leak run as a report, hostile names, and what a
  Markdown renderer sees of a summary.
- ``merged``: report.json files as ``memgate merge`` reads them (``doc``, ``leak_doc``
  on ``ENV``), written into a folder (``write``), parsed (``parsed``), three merged.
- ``native``: the leaky C extension's service, its extension built by the test.
- ``envs``: service environments of their own, with a dependency in a chosen version.
- ``actions``: GitHub Actions as the runner sees it (workflow commands, output files, the
  lines of a step's output, a simulated step).
"""

from __future__ import annotations

from tests.support.actions import actions_step, parse_command, read_file_commands, runner_lines
from tests.support.command import MEMGATE, memgate, one_line_error
from tests.support.curves import (
    BASE_HEAP,
    BASE_RSS,
    FLAT,
    LEAK_64,
    PLATEAU,
    RSS_GROWTH,
    STEP,
    TOTAL,
    WARMUP,
    after_warmup,
    ar1,
    curve,
)
from tests.support.envs import DEPENDENCY_SERVICE, service_env
from tests.support.fuzz import FUZZ, toml, toml_key, toml_value
from tests.support.merged import ENV, doc, leak_doc, merged_three, parsed, write
from tests.support.native import NATIVE_SERVICE, build_leaky
from tests.support.repo import (
    DEMO_APP,
    DEMO_SCENARIO,
    FIXTURES,
    MINIMAL,
    REPO,
    committed_schema,
    planted_leak_line,
)
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
    "BASE_HEAP",
    "BASE_RSS",
    "DEMO_APP",
    "DEMO_SCENARIO",
    "DEPENDENCY_SERVICE",
    "ENV",
    "FIXTURES",
    "FLAT",
    "FUZZ",
    "HOSTILE",
    "LEAK_64",
    "MEMGATE",
    "MINIMAL",
    "NATIVE_SERVICE",
    "NOW",
    "PLATEAU",
    "REPO",
    "RSS_GROWTH",
    "SERVER",
    "STEP",
    "TOTAL",
    "WARMUP",
    "actions_step",
    "after_warmup",
    "ar1",
    "build_leaky",
    "committed_schema",
    "curve",
    "doc",
    "flat_curve",
    "leak_doc",
    "leak_report",
    "leftovers",
    "make_result",
    "make_summary",
    "markdown_structure",
    "memgate",
    "merged_three",
    "one_line_error",
    "parse_command",
    "parsed",
    "planted_leak_line",
    "read_file_commands",
    "run_file",
    "runner_lines",
    "scenario_file",
    "server",
    "service_env",
    "table_cells",
    "toml",
    "toml_key",
    "toml_value",
    "write",
]
