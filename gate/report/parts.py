"""The pieces of text the reporters share (what every reporter is given is
:class:`gate.report.report.Report`; what the charts draw, :mod:`gate.report.curves`)."""

from __future__ import annotations

from collections.abc import Sequence

from gate.analysis.resources import LABELS
from gate.analysis.shape import MIN_RISE, MIN_SLOPE, is_growing
from gate.dependencies import normalize, owner, owner_of_path
from gate.merge import Merged
from gate.model import Frame, NativeFrame, Provenance, RunResult, Site, shown_file
from gate.observed import CaptureInfo, ProcessCurve, Retention
from gate.outcome import WORST_FIRST, Outcome
from gate.report.report import Report
from gate.shapes import Shape, Trend
from gate.summary import TrendSummary
from gate.units import quantity, size
from gate.verdict import Finding

TOP_SITES = 5
MIN_CONFIDENCE = 0.5
"""Sites listed must grow at least MIN_SLOPE bytes per request, with an interval above
zero and at least this confidence."""


def ran_on_text(result: RunResult) -> str:
    """``; ran on past the 3,000 requests asked ...`` for a counted run whose load went
    on until enough full collections were read; else empty."""
    load = result.settings.get("load") if result.settings else None
    asked = load.get("requests") if isinstance(load, dict) else None
    if result.capture.mode not in ("counters", "sampled") or not isinstance(asked, int):
        return ""
    if result.load.stop_reason != "requests" or result.load.measured_requests < 1.05 * asked:
        return ""
    return (
        f" (ran on past the {asked:,} asked until enough full collections were read:"
        " counted, the service serves them fast)"
    )


def no_sites_text(result: RunResult) -> str:
    """What to say when no site is listed: none grew, none was recorded, or (sampled) the
    heap grew where no Python allocation is: in native code, whose frames only memray's
    native traces give."""
    if result.capture.mode == "counters":
        return (
            "No allocation site was recorded: the heap was counted, no allocation traced"
            ' (with capture = "auto", a run whose counted heap may grow is traced).'
        )
    if result.capture.mode == "sampled" and result.analysis.shape is Shape.LEAK:
        return (
            "No allocation site of Python's allocators grew: the heap grows in memory native"
            ' code takes from malloc; run again with capture = "live" and native = true to'
            " see its native frames."
        )
    return "No allocation site grew steadily through the steady state."


def unexplained_text(result: RunResult) -> str:
    """Sampled, when the heap leaks and the sites that grow explain less than half of it:
    the rest grows in native memory (``""`` otherwise). A C extension's leak is in the
    counted heap but at no site of Python's allocators, and a site growing a little
    beside it (within its interval) must not hide that."""
    if result.capture.mode != "sampled" or result.analysis.shape is not Shape.LEAK:
        return ""
    heap = result.analysis.heap.trend.slope
    explained = sum(s.trend.slope for s in growing_sites(result.sites, len(result.sites)))
    if not heap > 0 or explained >= heap / 2:
        return ""
    return (
        f"These sites explain {explained:,.1f} of the heap's {heap:,.1f} bytes per request:"
        " the rest grows in memory native code takes from malloc; run again with"
        ' capture = "live" and native = true to see its native frames.'
    )


def growing_sites(sites: Sequence[Site], top: int = TOP_SITES) -> list[Site]:
    """The sites worth showing: growing surely (interval above zero), materially and
    with some confidence, most likely leaking first."""
    return [
        s
        for s in sites
        if s.trend.low > 0 and s.trend.slope >= MIN_SLOPE and s.confidence >= MIN_CONFIDENCE
    ][:top]


def growing_processes(result: RunResult) -> list[ProcessCurve]:
    """The profiled processes whose heap grew surely and materially through the steady
    state (a leaking prefork worker), fastest first."""
    grew = [p for p in result.process_curves if p.trend and is_growing(p.trend, MIN_RISE)]
    return sorted(grew, key=lambda p: p.trend.slope if p.trend else 0.0, reverse=True)


def resources_text(result: RunResult) -> str:
    """One line on the counts other than memory: each from steady start to end, and
    which keep growing."""
    if not result.resources:
        return "not measured"
    parts = []
    for r in result.resources:
        part = f"{LABELS.get(r.name, r.name)} {r.at_steady:,} -> {r.at_end:,}"
        if r.grows and r.trend:
            part += f" (GROWS {r.trend.slope * 1000:,.1f} per 1000 requests)"
        parts.append(part)
    return "; ".join(parts)


def gc_text(result: RunResult) -> str:
    """The garbage collector's work per request over the steady state, in one line."""
    gc = result.gc
    if gc is None:
        return "not measured"
    return (
        f"{gc.collections_per_request:,.3f} collections per request"
        f" ({gc.full_per_1000_requests:,.2f} full per 1000 requests),"
        f" {gc.seconds_per_request * 1e6:,.1f} µs per request in the steady state"
    )


def collections_text(result: RunResult) -> str | None:
    """The full collections the retained heap was read after, and what they cost the
    service, in one line; ``None`` when none were asked for."""
    full = result.full_collections
    if full is None:
        return None
    made = f"{full.forced:,} full collections by memgate, {full.service:,} by the service"
    if not full.forced:
        return f"{made} in the measured phase"
    unread = (
        f"; {full.unread:,} not read (memgate's reading was behind the service)"
        if full.unread
        else ""
    )
    return (
        f"{made} in the measured phase; memgate's paused it {full.median_pause_s * 1e3:,.1f} ms"
        f" (median, at most {full.max_pause_s * 1e3:,.1f} ms): {full.share:.1%} of the time"
        f"{unread}"
    )


def heap_name(result: RunResult) -> str:
    """What the heap's growth was judged on, in a few words."""
    return "retained heap" if result.analysis.basis == "retained" else "heap"


def heap_ends(result: RunResult) -> tuple[int, int]:
    """The heap at the steady state's start and at the load's end, as the analysis judged
    it: right after the nearest full collections when judged on the retained heap."""
    points, steady = result.curve.points, result.analysis.steady
    if steady.retained_index is not None:
        kept = result.curve.retained
        return kept[steady.retained_index].heap, kept[-1].heap
    return points[steady.index].heap, points[-1].heap


SHOWN_FAILURES = 3
"""Failure reasons shown in the terminal and the job summary (the HTML report and the
JSON have all a result keeps)."""


def failures_text(result: RunResult, most: int = SHOWN_FAILURES) -> str:
    """Why requests failed, most frequent first: ``GET /x: HTTPError('404 ...') (120
    times); ...``, or nothing when none did."""
    reasons = result.load.failure_reasons
    if not result.load.failures or not reasons:
        return ""
    text = "; ".join(str(r) for r in reasons[:most])
    more = len(reasons) - most
    return text + (f"; and {more} more" if more > 0 else "")


def service_frames(stack: Sequence[Frame]) -> tuple[Frame, ...]:
    """A stack as the service's code made it, for people: without the frames through
    which the service was started under memray, at its outer end (memray's ``run``
    command and ``runpy``'s, kept in results written before memgate started the service
    itself, or memgate's agent's)."""
    end = len(stack)
    while end > 1 and _is_launcher(stack[end - 1].file):
        end -= 1
    return tuple(stack[:end])


def _is_launcher(file: str) -> bool:
    parts = file.replace("\\", "/").split("/")
    return (
        file in ("<frozen runpy>", "<frozen runpy.py>")
        or parts[-1] in ("runpy.py", "memgate_agent.py")
        or "memray" in parts[:-1]
    )


def curve_reason(report: Report, curve: str) -> str:
    """Why the ``heap`` or ``rss`` curve has its shape, and, when a finding holds its
    growth past the history's limit, that too: the shape is judged against fixed
    materiality, the history against the runs before, and a reader must not see "no
    material growth" beside a failed growth check without the why."""
    shape = getattr(report.result.analysis, curve)
    metric = f"{'RSS' if curve == 'rss' else 'heap'} growth per request"
    found = next((f for f in report.decision.findings if f.metric == metric), None)
    if found is None or found.limit is None:
        return str(shape.reason)
    return (
        f"{shape.reason}; past the history's limit of {quantity(found.limit, found.unit)},"
        f" a {found.severity.value} (see the findings)"
    )


def census_text(result: RunResult) -> str:
    """What the censuses cost: objects counted and the service's pause for each."""
    retention = result.retention
    if retention is None:
        return "not taken"
    parts = []
    for census in retention.censuses:
        cut = " (stopped at its limit)" if census.truncated else ""
        parts.append(
            f"{census.label} {census.objects:,} objects{cut}, paused {census.seconds:.2f} s"
        )
    parts += retention.problems
    return "; ".join(parts)


def nothing_retained(retention: Retention) -> str:
    """What to say when no growth is named: nothing grew, or the census could not tell."""
    compared = {c.pid for c in retention.censuses if c.label == "start"} & {
        c.pid for c in retention.censuses if c.label == "end"
    }
    if not compared:
        return "unknown: a census the comparison needs failed or never came"
    if retention.problems:
        return (
            "nothing the garbage collector's census counts grew with the requests, in the"
            " processes whose censuses could be compared"
        )
    return "nothing the garbage collector's census counts grew with the requests"


def several_processes(retention: Retention) -> bool:
    return len({c.pid for c in retention.censuses}) > 1


MOST_CHANGES = 20


def dependency_notes(report: Report) -> list[str]:
    """When the check failed or flagged, a line per distribution whose version changed
    since the compared runs (those holding a finding first): ``somelib 2.4.1 → 2.5.0
    (2 findings in or through it, 1 growing container in it)``, a finding in the
    service's code counted for the distribution it calls into
    (:meth:`Report.changed_under`), native growth for the only one that changed
    (:meth:`Report.cause`), and why it is the likely cause: ``somelib 1.0.0 → 2.0.0
    (1 finding in or through it; likely cause: the leak at app.py:13 calls into its
    extension)``. Native growth with several changed says so, naming none; none for
    a pass."""
    if report.decision.verdict is Outcome.PASS:
        return []
    found: dict[str, int] = {}
    why: dict[str, str] = {}
    for finding in report.decision.findings:
        name = report.counted_for(finding)
        if name:
            found[name] = found.get(name, 0) + 1
        cause = report.cause(finding)
        if cause is not None:
            why.setdefault(cause.change.name, cause.why)
    kept: dict[str, int] = {}  # what keeps memory alive, held in a distribution's modules
    retention = report.result.retention
    for retained in retention.retained if retention else ():
        changed = {c.name for c in report.changes}
        name = owner_of_path(retained.what, report.result.provenance.packages, changed)
        if retained.kind == "container" and name:
            kept[name] = kept.get(name, 0) + 1
    notes = []
    order = sorted(report.changes, key=lambda c: (-found.get(c.name, 0), -kept.get(c.name, 0)))
    for change in order:
        count, held = found.get(change.name, 0), kept.get(change.name, 0)
        parts = [f"{count} finding{'s' if count > 1 else ''} in or through it"] * bool(count)
        parts += [f"{held} growing container{'s' if held > 1 else ''} in it"] * bool(held)
        text = ", ".join(parts)
        if change.name in why:
            text += f"; likely cause: {why[change.name]}"
        notes.append(change.text() + (f" ({text})" if text else ""))
    if len(notes) > MOST_CHANGES:
        notes = [*notes[:MOST_CHANGES], f"and {len(notes) - MOST_CHANGES} more"]
    if report.suspects():
        notes.append(report.suspects())
    return notes


def capture_text(capture: CaptureInfo) -> str:
    """How memray's records were read: a capture file's size and reading time, or the
    live reading's points, stacks and cost."""
    forks = f" and {capture.forks} forks" if capture.forks else ""
    if capture.mode == "live":
        figures = f"{capture.snapshots:,} points"
        if capture.stacks is not None:
            figures += f", {capture.stacks:,} live stacks at the end"
        if capture.poll_seconds is not None:
            figures += f", {capture.poll_seconds * 1000:.0f} ms a reading"
        text = f"live{forks}: {figures}; result {capture.read_seconds:.1f} s after the load"
        if capture.behind_share:
            text += (
                f"; the reading fell behind ({size(capture.backlog_bytes or 0)} waiting at"
                f" most, in {capture.behind_share:.0%} of readings): the service was slowed"
            )
        if capture.problems:
            text += f"; {len(capture.problems)} problem(s): {capture.problems[0]}"
        first = capture.counted_first
        if first is not None:
            text += (
                f"; traced after a counted run of {first.requests:,} requests:"
                f" {first.why} ({first.folder}/)"
            )
        return text
    if capture.mode == "sampled":
        return (
            f"sampled{forks}: no allocation traced, sites estimated from samples;"
            f" {capture.snapshots:,} points; result {capture.read_seconds:.1f} s after the load"
        )
    if capture.mode == "counters":
        return (
            f"counters{forks}: no allocation traced; {capture.snapshots:,} points;"
            f" result {capture.read_seconds:.1f} s after the load"
        )
    return (
        f"{capture.file}{forks}: {size(capture.bytes)},"
        f" {capture.snapshots:,} snapshots, read in {capture.read_seconds:.1f} s"
    )


def process_name(process: ProcessCurve) -> str:
    return f"{'main process' if process.main else 'fork'} {process.pid}"


def process_growth(process: ProcessCurve) -> str:
    """A process's heap growth as the reports show it: over the steady state, else over
    its own life (a worker recycled or started midway), else why there is none."""
    if process.trend is not None:
        return rate(process.trend)
    ended = "ended; " if process.ended else ""
    if process.lifetime is not None:
        return f"{ended}{rate(process.lifetime)} while it ran"
    return f"{ended}not running throughout"


def rate(trend: Trend | TrendSummary) -> str:
    """``256.7 B/request [256.0, 257.5]``: the slope and its interval."""
    return f"{_num(trend.slope)} B/request [{_num(trend.low)}, {_num(trend.high)}]"


def _num(value: float) -> str:
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def changed_files(provenance: Provenance, most: int = 5) -> str:
    """``3 files changed since the commit: app.py, views.py, models.py``; empty for a
    clean checkout (or none)."""
    files = provenance.dirty or ()
    if not files:
        return ""
    named = ", ".join(files[:most]) + (", ..." if len(files) > most else "")
    return f"{len(files)} file{'' if len(files) == 1 else 's'} changed since the commit: {named}"


def library_of(frame: Frame | None, provenance: Provenance) -> str:
    """``uvicorn 0.30.1``: the distribution a library frame's file belongs to, with its
    version when the run recorded it; empty when none is known."""
    name = owner(frame, provenance.packages)
    if name is None:
        return ""
    versions = {normalize(n): v for n, v in (provenance.distributions or {}).items()}
    return f"{name} {versions[name]}" if name in versions else name


def not_user_code(site: Site, provenance: Provenance) -> str:
    """`` (uvicorn 0.30.1, not user code)`` after a site's place; empty for the
    service's own."""
    if site.in_user_code or site.frame is None:
        return ""
    library = library_of(site.frame, provenance)
    return f" ({library}, not user code)" if library else " (not user code)"


def where(frame: Frame | None) -> str:
    """``file:line in function``, a library's file from its import root."""
    return f"{shown_file(frame.file)}:{frame.line} in {frame.function}" if frame else ""


def change(finding: Finding) -> str:
    """``+250.3 B/request (+41%)``: the current value against the history's center."""
    if finding.current is None or finding.baseline is None:
        return ""
    delta = finding.current - finding.baseline
    text = ("+" if delta >= 0 else "-") + quantity(abs(delta), finding.unit)
    if abs(finding.baseline) > 1e-9 and abs(delta / finding.baseline) < 10:
        text += f" ({delta / abs(finding.baseline):+.0%})"
    return text


def headline(finding: Finding) -> str:
    """A finding in a few words for a summary table: its metric, value and change
    (``peak heap 8.0 MiB, +2.6 MiB (+48%)``), or its message when it has no figures."""
    if finding.current is None:
        return finding.message
    text = f"{finding.metric} {quantity(finding.current, finding.unit)}"
    return text + (f", {change(finding)}" if change(finding) else "")


def tally(merged: Merged) -> str:
    """``3 scenarios: 1 fail, 1 flag, 1 pass; 1 input could not be merged``."""
    n = len(merged.reports)
    parts = [f"{merged.count(o)} {o.value}" for o in WORST_FIRST if merged.count(o)]
    text = f"{n} scenario{'' if n == 1 else 's'}" + (": " + ", ".join(parts) if parts else "")
    bad = len(merged.errors)
    if bad:
        text += f"; {bad} input{'' if bad == 1 else 's'} could not be merged"
    return text


def baseline_text(finding: Finding) -> str:
    """``1.2 B/request ± 0.4``, or nothing when the finding has no history."""
    if finding.baseline is None:
        return ""
    spread = quantity(finding.spread or 0, finding.unit)
    return f"{quantity(finding.baseline, finding.unit)} ± {spread}"


def native_at(result: RunResult, frame: Frame | None) -> NativeFrame | None:
    """The extension's native frame called at ``frame``, from the first site named by it
    that has one (sites are most likely leaking first)."""
    return next((s.native_frame for s in result.sites if s.frame == frame and s.native_frame), None)


def is_user_frame(result: RunResult, frame: Frame | None) -> bool:
    """Whether ``frame`` is some site's user frame (not the standard library's or a
    package's): the only frames an annotation may point at."""
    return frame is not None and any(site.user_frame == frame for site in result.sites)
