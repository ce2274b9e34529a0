"""False-flag benchmark: how often a check of unchanged code is flagged or failed, and how
often a planted leak is missed, against recorded histories of 3 and of 10 clean runs.

    .venv/bin/python benchmarks/false_flags.py                       # 10 + 100 x 3 runs
    .venv/bin/python benchmarks/false_flags.py --checks 30 --record runs.jsonl
    .venv/bin/python benchmarks/false_flags.py --table-only --record runs.jsonl
    .venv/bin/python benchmarks/false_flags.py --service noisy --record noisy.jsonl
    .venv/bin/python benchmarks/false_flags.py --service cyclic --record cyclic.jsonl
    .venv/bin/python benchmarks/false_flags.py --capture counters --record counters.jsonl
    .venv/bin/python benchmarks/false_flags.py --service flask --history 3 --checks 20 \
        --cases clean --record flask.jsonl

``--service`` picks a bundled service: ``demo`` (the default), ``noisy`` (a heap that
wanders by tens of KiB) or ``cyclic`` (a large long-lived heap, so that reference cycles
wait for rare full collections: the heap ramps like a leak between them), ``flask`` or
``django`` (the framework apps under gunicorn, whose planted leak is one size);
``--scenario`` and ``--leak-var`` name any other.

First ``--history`` clean runs of the scenario (the demo's by default) are recorded
(``memgate run``'s code path, the scenario as a pull-request check runs it); then
``--checks`` rounds, each a run of every case (clean, 16 and 64 B/request planted) in
turn, so that a slow stretch of the machine hits them alike. Every check run is judged
by memgate's own verdict (``gate.verdict.decide``, as ``memgate check`` judges it)
against the first 3 recorded runs and against all of them. Each run's summary is
appended to ``--record`` as it ends, so an interrupted benchmark keeps what it
measured, and ``--table-only`` judges a record again with this memgate. The table
prints, per case and history size, the checks that passed, flagged and failed, and the
rate that matters with its 95% interval (Wilson's): clean, a flag or a failure is a
false flag; planted, anything but a failure is a miss. A last line says whether a
history recorded as ``check --record`` records it (a failing run left out) would be
narrower than one of every clean run: the lucky runs only. It takes 5 to 35 s a run on
2 cores: not part of CI.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from pydantic import TypeAdapter
from scipy.stats import binomtest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gate.analysis.shape import retained_shape  # noqa: E402
from gate.baseline import _history_adapter  # noqa: E402
from gate.errors import MemgateError  # noqa: E402
from gate.outcome import Outcome  # noqa: E402
from gate.run.orchestrate import run_all  # noqa: E402
from gate.scenario import BudgetSpec, load_scenario  # noqa: E402
from gate.shapes import CurveShape  # noqa: E402
from gate.summary import (  # noqa: E402
    DEFAULT_KEEP,
    SCHEMA_VERSION,
    History,
    RunSummary,
    TrendSummary,
    summarize,
)
from gate.verdict import decide  # noqa: E402
from gate.verdict.history import HEAP_GROWTH, METRICS, band_of  # noqa: E402

CASES = {"clean": None, "leak16": "16", "leak64": "64"}
SERVICES = {
    "demo": ("scenarios/demo.toml", "DEMO_LEAK_BYTES"),
    "noisy": ("scenarios/bench/noisy.toml", "NOISY_LEAK_BYTES"),
    "cyclic": ("scenarios/bench/cyclic.toml", "CYCLIC_LEAK_BYTES"),
    # any value plants the frameworks' container (every answer kept): run with --cases
    # clean,leak64
    "flask": ("scenarios/frameworks/flask.toml", "FLASK_LEAK"),
    "django": ("scenarios/frameworks/django.toml", "DJANGO_LEAK"),
}
HISTORIES = (3, 10)


def run_once(
    case: str,
    scenario_path: Path,
    leak_var: str,
    workdir: Path,
    capture: str | None = None,
    *,
    recording: bool = False,
) -> list[tuple[RunSummary, CurveShape | None]] | str:
    """One run of the scenario with ``case`` planted (recorded as ``capture`` says, if
    given): its summary and its retained heap's shape (if it had enough points), or why
    it failed. ``recording``: as ``check --record`` runs it, which with ``capture =
    "auto"`` traces after the counted run in any case: both runs, the traced first; a
    check's, the judged run alone."""
    planted = CASES[case]
    env = {leak_var: planted} if planted else {}
    scenario = load_scenario(scenario_path).with_overrides(env=env, capture=capture)
    try:
        runs = run_all(scenario, workdir / case, trace_always=recording)
    except MemgateError as exc:
        return str(exc)
    kept = (*runs.judged, *runs.counted) if recording else runs.judged  # checks: the judged
    return [(summarize(r), retained_shape(r.curve)) for r in kept]


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95% interval of the rate k/n (Wilson's score interval)."""
    interval = binomtest(k, n).proportion_ci(method="wilson")
    return interval.low, interval.high


def table(records: list[dict[str, object]], histories: tuple[int, ...]) -> str:
    adapter = _history_adapter()
    recorded = [r for r in records if r["role"] == "history" and "summary" in r]
    rows = [
        "| case | history runs | checks | pass | flag | fail | false flags or misses"
        " [95% interval] | median heap slope B/req | median interval width B/req | judged on"
        " | retained heap: median slope, width B/req (runs with enough points) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in histories:
        if len({r.get("group", i) for i, r in enumerate(recorded)}) < size:
            rows.append(f"| (history of {size}: only {len(recorded)} runs recorded) |||||||||")
            continue
        # A recording check of capture = "auto" records two runs (one group).
        groups = list(dict.fromkeys(r.get("group", i) for i, r in enumerate(recorded)))
        chosen = set(groups[:size])
        runs = tuple(
            _summary(adapter, r) for i, r in enumerate(recorded) if r.get("group", i) in chosen
        )
        history = History(SCHEMA_VERSION, "demo", runs, None)
        for case in CASES:
            checks = [r for r in records if r["role"] == "check" and r["case"] == case]
            judged = [_summary(adapter, r) for r in checks if "summary" in r]
            failed_runs = len(checks) - len(judged)
            verdicts = [decide(s, history, BudgetSpec()).verdict for s in judged]
            counts = {o: verdicts.count(o) for o in (Outcome.PASS, Outcome.FLAG, Outcome.FAIL)}
            n = len(verdicts)
            if not n:
                continue
            bad = n - counts[Outcome.PASS] if case == "clean" else n - counts[Outcome.FAIL]
            low, high = wilson(bad, n)
            what = "false flags" if case == "clean" else "misses"
            slope = statistics.median(s.heap.slope for s in judged)
            width = statistics.median(s.heap.high - s.heap.low for s in judged)
            bases = sorted({s.basis for s in judged})
            kept = [cast("list[float]", r["retained"]) for r in checks if "retained" in r]
            retained = (
                f"{statistics.median(k[0] for k in kept):.1f},"
                f" {statistics.median(k[2] - k[1] for k in kept):.1f} ({len(kept)}/{n})"
                if kept
                else "-"
            )
            rows.append(
                f"| {case} | {size} | {n}{f' ({failed_runs} runs failed)' if failed_runs else ''}"
                f" | {counts[Outcome.PASS]} | {counts[Outcome.FLAG]} | {counts[Outcome.FAIL]}"
                f" | {what} {bad}/{n} = {bad / n:.1%} [{low:.1%}, {high:.1%}] | {slope:.1f}"
                f" | {width:.1f} | {', '.join(bases)} | {retained} |"
            )
    return "\n".join(rows)


def lucky_runs(records: list[dict[str, Any]]) -> str:
    """Whether a history recorded as ``check --record`` records (a run that fails is
    left out) is narrower than one of every clean run: the clean runs in order, each
    judged against the runs recorded before it, and the limits of the last
    ``DEFAULT_KEEP`` kept either way."""
    adapter = _history_adapter()
    clean = [_summary(adapter, r) for r in records if r["case"] == "clean" and "summary" in r]
    if not clean:
        return "no clean run recorded: nothing to replay"
    kept: list[RunSummary] = []
    for run in clean:
        history = History(SCHEMA_VERSION, "demo", tuple(kept[-DEFAULT_KEEP:]), None)
        if not kept or decide(run, history, BudgetSpec()).verdict is not Outcome.FAIL:
            kept.append(run)
    return (
        f"{len(clean)} clean runs in order; check --record would have left out"
        f" {len(clean) - len(kept)}. Limits of the history it records:"
        f" {_limits(kept[-DEFAULT_KEEP:])}; of every clean run: {_limits(clean[-DEFAULT_KEEP:])}"
    )


def _limits(runs: list[RunSummary]) -> str:
    growth = next(m for m in METRICS if m.name == HEAP_GROWTH)
    retained = dataclasses.replace(
        growth,
        value=lambda r: r.retained.slope if r.retained else 0.0,
        interval=lambda r: (r.retained.low, r.retained.high) if r.retained else (0.0, 0.0),
    )
    peak = next(m for m in METRICS if m.name == "peak heap")
    with_retained = [r for r in runs if r.retained]
    parts = [f"peak heap {band_of(peak, runs).limit / 2**20:.2f} MiB"]
    if with_retained:
        parts.append(f"retained growth {band_of(retained, with_retained).limit:.1f} B/request")
    parts.append(f"growth on every point {band_of(growth, runs).limit:.1f} B/request")
    return ", ".join(parts)


def _summary(adapter: TypeAdapter[History], record: dict[str, Any]) -> RunSummary:
    """A record's summary (the history file's form of a run). A record written before
    summaries kept the retained heap's growth has it beside (its p-value unknown: 0.5)."""
    doc = {"schema_version": SCHEMA_VERSION, "scenario": "demo", "runs": [record["summary"]]}
    summary = adapter.validate_python(doc).runs[0]
    if summary.retained is None and record.get("retained"):
        slope, low, high = record["retained"]
        summary = dataclasses.replace(summary, retained=TrendSummary(slope, low, high, 0.5))
    return summary


def _stored(summary: RunSummary) -> object:
    """A summary in the history file's form."""
    history = History(SCHEMA_VERSION, "demo", (summary,), None)
    return json.loads(_history_adapter().dump_json(history))["runs"][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", choices=sorted(SERVICES), help="a bundled service")
    parser.add_argument("--scenario", type=Path, help="scenario run (default: the demo's)")
    parser.add_argument("--leak-var", help="the service's variable that plants a leak")
    parser.add_argument("--history", type=int, default=max(HISTORIES), help="clean runs recorded")
    parser.add_argument("--checks", type=int, default=100, help="check runs per case")
    parser.add_argument("--record", type=Path, help="append each run here (JSON lines)")
    parser.add_argument(
        "--capture",
        choices=("live", "file", "counters", "sampled", "auto"),
        help="how allocations are recorded",
    )
    parser.add_argument("--table-only", action="store_true", help="judge --record again")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"checked cases, of {', '.join(CASES)}"
    )
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    if not cases or set(cases) - set(CASES):
        parser.error(f"--cases: a comma-separated list of {', '.join(CASES)}")
    scenario, leak_var = SERVICES[args.service or "demo"]
    args.scenario = args.scenario or REPO / scenario
    args.leak_var = args.leak_var or leak_var
    record = args.record or Path(tempfile.mkdtemp(prefix="memgate-flags-")) / "runs.jsonl"
    histories = tuple(h for h in HISTORIES if h <= args.history)
    records: list[dict[str, object]] = []
    if record.exists():
        records = [json.loads(line) for line in record.read_text().splitlines() if line]
    if args.table_only:
        print(table(records, histories))
        print(f"\n{lucky_runs(records)}")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="memgate-flags-"))
    recorded = len({r.get("group", i) for i, r in enumerate(records) if r["role"] == "history"})
    checks = [r["case"] for r in records if r["role"] == "check"]
    done = {case: checks.count(case) for case in CASES}
    plan = [("history", "clean")] * max(args.history - recorded, 0)
    for round_ in range(args.checks):
        plan += [("check", case) for case in cases if done[case] <= round_]
    print(f"{len(plan)} runs; recorded in {record}", file=sys.stderr)
    for role, case in plan:
        started = time.perf_counter()
        recording = role == "history"
        outcome = run_once(
            case, args.scenario, args.leak_var, workdir, args.capture, recording=recording
        )
        wall = round(time.perf_counter() - started, 1)
        entries: list[dict[str, object]] = []
        if isinstance(outcome, str):
            entries.append({"role": role, "case": case, "error": outcome})
        group = f"g{len({r.get('group', i) for i, r in enumerate(records) if r['role'] == role})}"
        for summary, retained in outcome if not isinstance(outcome, str) else ():
            entry: dict[str, object] = {"role": role, "case": case}
            if recording and len(outcome) > 1:
                entry["group"] = group
            entry["summary"] = _stored(summary)
            entry["slope"] = summary.heap.slope
            if retained is not None:
                entry["retained"] = [retained.trend.slope, retained.trend.low, retained.trend.high]
            entries.append(entry)
        for entry in entries:
            entry["wall_s"] = wall
            records.append(entry)
            with open(record, "a") as out:
                out.write(json.dumps(entry) + "\n")
            print(json.dumps({k: v for k, v in entry.items() if k != "summary"}), file=sys.stderr)
    print(table(records, histories))
    print(f"\n{lucky_runs(records)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
