"""Detection benchmark: how often memgate finds planted leaks, and names their line.

    .venv/bin/python benchmarks/detection.py --quick      # CI: 4 cases, 8 s, 1 repeat
    .venv/bin/python benchmarks/detection.py --full       # the figures: 60 s runs, 5 repeats
    .venv/bin/python benchmarks/detection.py --seconds 30 --repeats 3 --cases clean leak64
    .venv/bin/python benchmarks/detection.py --full --capture sampled live  # both, interleaved

Each case runs the demo scenario (``memgate run``'s own code path) with the example
service switched by environment: planted leaks of 16, 64, 256 and 1024 bytes per
request, the unbounded and LRU caches, and the clean service. Runs go round-robin over
the cases (and the capture modes asked for), so that a slow stretch of the machine hits
them alike, and each finished run
is appended to ``--record`` (JSON lines), so an interrupted benchmark keeps its figures.
The table prints, per case, how often the run's shape was the expected one, how often
the planted line was the top-ranked site, the median slope and reading time, and how
often a soak's sequential rule (``load.stop_on_leak``, ``gate.analysis.sequential``),
replayed on the run's curve with a look every 10 s of load as ``gate.run.soak`` looks,
would have stopped the load as a certain leak, and after how long: on the clean case,
its false alarms.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from scipy.stats import binomtest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gate.errors import MemgateError  # noqa: E402
from gate.model import RunResult  # noqa: E402
from gate.result import read_result, write_result  # noqa: E402
from gate.run.orchestrate import run_scenario  # noqa: E402
from gate.scenario import load_scenario  # noqa: E402
from gate.shapes import Shape  # noqa: E402

APP = "examples/demo_service/app.py"
QUICK_CASES = ["clean", "leak256", "unbounded", "lru"]
"""Short runs tell these apart reliably; the smaller leaks need the full mode's length."""


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    env: dict[str, str]
    expected: Shape
    line: int | None
    """The planted line the top site should name, if any."""


def _line_of(marker: str) -> int:
    for number, line in enumerate((REPO / APP).read_text().splitlines(), start=1):
        if line.rstrip().endswith(marker) and not line.lstrip().startswith("#"):
            return number
    raise LookupError(marker)


def cases() -> list[Case]:
    leak = _line_of("# planted leak")
    out = [Case("clean", {}, Shape.FLAT, None)]
    out += [
        Case(f"leak{n}", {"DEMO_LEAK_BYTES": str(n)}, Shape.LEAK, leak) for n in (16, 64, 256, 1024)
    ]
    out += [
        Case("unbounded", {"DEMO_CACHE": "unbounded"}, Shape.LEAK, None),
        Case("lru", {"DEMO_CACHE": "lru"}, Shape.PLATEAU, None),
    ]
    return out


PACE = {"sampled": 6000, "live": 1500, "file": 2000}
"""About how many requests per second the demo serves under each capture (sampled runs
at close to full speed; memray's traces at a quarter of it), measured on the 2-core
machine."""


def case_env(case: Case, seconds: float, capture: str) -> dict[str, str]:
    """The case's environment for a run of ``seconds`` under ``capture``. The LRU cache is
    sized to fill in about the first fifth of the run: one that fills within the warm-up
    and the first block of the curve (2,000 items take about 2,500 requests, half a second
    sampled) rightly reads as flat, not as a plateau."""
    if case.env.get("DEMO_CACHE") != "lru":
        return case.env
    size = max(2000, int(PACE[capture] * seconds / 5 * 0.8))  # 4 in 5 requests view an item
    return {**case.env, "DEMO_CACHE_SIZE": str(size)}


def run_once(
    case: Case, seconds: float, workdir: Path, keep: Path | None = None, capture: str = "sampled"
) -> dict[str, object]:
    scenario = load_scenario(REPO / "scenarios" / "demo.toml").with_overrides(
        env=case_env(case, seconds, capture), duration=seconds, warmup=500, capture=capture
    )
    out = workdir / case.name
    started = time.perf_counter()
    try:
        result: RunResult = run_scenario(scenario, out)
    except MemgateError as exc:
        return {"case": case.name, "capture": capture, "error": str(exc)}
    finally:
        (out / "capture.bin").unlink(missing_ok=True)
    if keep is not None:
        # The analysis is pure: a kept result can be analysed again (--reanalyse).
        keep.mkdir(parents=True, exist_ok=True)
        write_result(result, keep / f"{case.name}-{int(time.time() * 1000)}.json")
    return summarize(case, result, started)


def summarize(case: Case, result: RunResult, started: float | None = None) -> dict[str, object]:
    top = next((s for s in result.sites), None)
    frame = top.user_frame if top else None
    return {
        "case": case.name,
        "shape": result.analysis.shape.value,
        "expected": case.expected.value,
        "slope": result.analysis.heap.trend.slope,
        "low": result.analysis.heap.trend.low,
        "high": result.analysis.heap.trend.high,
        "top_site": f"{frame.file}:{frame.line}" if frame else None,
        "top_is_planted": bool(
            frame and case.line and (frame.file, frame.line) == (APP, case.line)
        ),
        "measured_requests": result.load.measured_requests,
        "rps": result.load.requests_per_second,
        "capture": result.capture.mode,
        "capture_mb": round(result.capture.bytes / 2**20, 1),
        "read_s": result.capture.read_seconds,
        "wall_s": round(time.perf_counter() - started, 1) if started else None,
        "soak_stop_s": soak_stop(result),
    }


def soak_stop(result: RunResult) -> float | None:
    """Seconds of load after which a soak of this run would have stopped as a certain
    leak, looking every :data:`gate.run.soak.LOOK_EVERY_S` at the curve so far;
    ``None``: it would have run its full length."""
    from gate.analysis.sequential import look_at
    from gate.run.soak import LOOK_EVERY_S

    points = result.curve.points
    looks = 0
    at = LOOK_EVERY_S
    while points and at <= points[-1].t:
        seen = [p for p in points if p.t <= at]
        look = look_at(
            looks + 1,
            [p.requests for p in seen],
            [p.heap for p in seen],
            result.curve.warmup_requests,
        )
        if look.trend is not None:  # a look too early to tell spends nothing
            looks += 1
            if look.certain:
                return at
        at += LOOK_EVERY_S
    return None


def _reanalysed(result: RunResult) -> RunResult:
    """The result with its analysis and site ranking computed by this memgate."""
    from gate.analysis.shape import analyse_curve
    from gate.analysis.sites import remeasure

    analysis = analyse_curve(result.curve)
    sites = remeasure(
        ((s.stack, s.user_frame, s.series) for s in result.sites),
        requests=[p.requests for p in result.curve.points],
        steady_index=analysis.steady.index,
    )
    return dataclasses.replace(result, analysis=analysis, sites=sites)


def table(records: list[dict[str, object]], planted: dict[str, int | None]) -> str:
    rows = [
        "| case | capture | runs | expected | detected as expected | top site is the planted"
        " line | median heap slope B/req [interval] | median req/s | median capture MiB, read s"
        " | a soak would have stopped (median s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_case: dict[tuple[str, str], list[dict[str, object]]] = {}
    for record in records:
        by_case.setdefault((str(record["case"]), str(record["capture"])), []).append(record)
    for (name, capture), runs in by_case.items():
        ok = [r for r in runs if "error" not in r]
        errors = len(runs) - len(ok)
        if not ok:
            rows.append(
                f"| {name} | {capture} | {len(runs)} | | all failed: {runs[0]['error']} | | | | | |"
            )
            continue
        expected = ok[0]["expected"]
        hits = sum(r["shape"] == expected for r in ok)
        shapes = ", ".join(sorted({str(r["shape"]) for r in ok if r["shape"] != expected}))
        attributed = (
            f"{sum(bool(r['top_is_planted']) for r in ok)}/{len(ok)}"
            if planted.get(name)
            else "n/a"
        )
        slope = statistics.median(float(r["slope"]) for r in ok)  # type: ignore[arg-type]
        low = statistics.median(float(r["low"]) for r in ok)  # type: ignore[arg-type]
        high = statistics.median(float(r["high"]) for r in ok)  # type: ignore[arg-type]
        rows.append(
            f"| {name} | {capture} | {len(runs)}{f' ({errors} failed)' if errors else ''}"
            f" | {expected}"
            f" | {hits}/{len(ok)} = {hits / len(ok):.0%}{f' (else {shapes})' if shapes else ''}"
            f" | {attributed} | {slope:.1f} [{low:.1f}, {high:.1f}]"
            f" | {statistics.median(float(r['rps']) for r in ok):.0f}"  # type: ignore[arg-type]
            f" | {statistics.median(float(r['capture_mb']) for r in ok):.0f},"  # type: ignore[arg-type]
            f" {statistics.median(float(r['read_s']) for r in ok):.1f}"  # type: ignore[arg-type]
            f" | {_stops(ok)} |"
        )
    return "\n".join(rows)


def _stops(runs: list[dict[str, object]]) -> str:
    """How many runs a soak would have stopped, with the median time and the rate's
    95% interval (Wilson's)."""
    if any("soak_stop_s" not in r for r in runs):
        return "n/a"
    stopped = [float(r["soak_stop_s"]) for r in runs if r["soak_stop_s"] is not None]  # type: ignore[arg-type]
    n, k = len(runs), len(stopped)
    interval = binomtest(k, n).proportion_ci(method="wilson")
    when = f" ({statistics.median(stopped):.0f} s)" if stopped else ""
    return f"{k}/{n}{when} [{interval.low:.0%}, {interval.high:.0%}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help=f"cases {', '.join(QUICK_CASES)}: 8 s, 1 repeat (CI)"
    )
    mode.add_argument("--full", action="store_true", help="60 s runs, 5 repeats")
    parser.add_argument("--seconds", type=float, help="measured seconds per run")
    parser.add_argument("--repeats", type=int, help="runs per case")
    parser.add_argument("--cases", nargs="*", help="case names (default: all)")
    parser.add_argument(
        "--capture",
        nargs="+",
        choices=("sampled", "live", "file"),
        default=["sampled"],
        help="how allocations are recorded: sampled, the default, or memray's traces read"
        " live or from a file (several: each case in each, interleaved)",
    )
    parser.add_argument("--record", type=Path, help="append each run here (JSON lines)")
    parser.add_argument("--table-only", action="store_true", help="print the table of --record")
    parser.add_argument("--keep", type=Path, help="keep every run's result.json in this folder")
    parser.add_argument(
        "--reanalyse",
        type=Path,
        metavar="FOLDER",
        help="print the table for the results kept in FOLDER, analysed by this memgate",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a run failed or missed its expected shape"
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (60.0 if args.full else 8.0)
    repeats = args.repeats or (5 if args.full else 1)
    names = args.cases or (QUICK_CASES if args.quick else None)
    chosen = [c for c in cases() if not names or c.name in names]
    planted = {c.name: c.line for c in cases()}
    record = args.record or Path(tempfile.mkdtemp(prefix="memgate-detect-")) / "runs.jsonl"
    if args.reanalyse:
        by_name = {c.name: c for c in cases()}
        records = []
        for path in sorted(args.reanalyse.glob("*.json")):
            case = by_name[path.name.rsplit("-", 1)[0]]
            result = read_result(path)  # version 1 files are migrated: analysis recomputed
            records.append(summarize(case, _reanalysed(result)))
        print(table(records, planted))
        return 0
    if args.table_only:
        records = [json.loads(line) for line in record.read_text().splitlines() if line]
        print(table(records, planted))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="memgate-detect-"))
    records = []
    print(
        f"{len(chosen)} cases x {repeats} runs of {seconds:g} s; runs recorded in {record}",
        file=sys.stderr,
    )
    try:
        for repeat in range(repeats):
            for case in chosen:
                for capture in args.capture:
                    outcome = run_once(case, seconds, workdir, args.keep, capture)
                    outcome["repeat"] = repeat
                    records.append(outcome)
                    with open(record, "a") as out:
                        out.write(json.dumps(outcome) + "\n")
                    print(json.dumps(outcome), file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(records, planted))
    missed = [r for r in records if "error" in r or r["shape"] != r["expected"]]
    if args.check and missed:
        for r in missed:
            print(f"missed: {r['case']}: {r.get('error') or r['shape']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
