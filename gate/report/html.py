"""One self-contained HTML file for release managers: curves (inline SVG), findings,
sites with full stacks, provenance, and what to do next.

The page is a Jinja2 template with autoescaping on: names from the measured code are
text, never markup. It loads nothing from the network.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shlex
from collections.abc import Sequence

import jinja2

from gate.model import RunResult, shown_file
from gate.outcome import Outcome
from gate.report.curves import Line, history_range, limit_lines, lines
from gate.report.history_trend import TrendRow, history_trend
from gate.report.links import code_link
from gate.report.parts import (
    baseline_text,
    capture_text,
    census_text,
    change,
    changed_files,
    curve_reason,
    dependency_notes,
    growing_processes,
    growing_sites,
    no_sites_text,
    nothing_retained,
    process_growth,
    process_name,
    rate,
    resources_text,
    service_frames,
    several_processes,
    unexplained_text,
    where,
)
from gate.report.report import Report
from gate.units import quantity, size
from gate.verdict import worst_finding

WIDTH, HEIGHT = 760, 300
CHAR_PX = 6.2
"""The width of a character of the charts' 11 px labels, about."""
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 44
COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
"""This run red, the baseline blue; processes take the palette in order."""
AREA = "#1f77b4"
"""The history's range: the baseline's blue, faint."""
GUIDES = ("#ff7f0e", "#9467bd")
"""The history's limits: of the peak, of the growth."""
SITES = 20


@dataclasses.dataclass(frozen=True)
class Tick:
    at: float
    """Pixel position along the axis."""
    label: str


@dataclasses.dataclass(frozen=True)
class Chart:
    title: str
    polylines: tuple[tuple[str, str, str], ...]
    """(label, colour, SVG points) per line."""
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    markers: tuple[Tick, ...]
    """Vertical lines: warm-up end, steady-state start."""
    area: tuple[str, str] | None = None
    """(label, SVG points of its outline): the range of the history's curves."""
    guides: tuple[tuple[str, str, str], ...] = ()
    """(label, colour, SVG path) per dashed line: the history's limits."""
    legend_at: tuple[float, ...] = ()
    """Where each line's key starts, after the one before it (by its label's length)."""


TREND_PLOT = 200
"""The trend chart's plot height; its bottom margin holds the slanted commits."""
TREND_SLANT = 35
"""Degrees the trend chart's commit labels are turned by, to fit a history of 20 runs."""


@dataclasses.dataclass(frozen=True)
class Mark:
    """One run in the trend chart: its growth and its interval, in pixels."""

    x: float
    slope: float
    low: float
    """The interval's lower end (the larger pixel value: the SVG's y grows downwards)."""
    high: float
    label: str
    colour: str
    tip: str
    """The run in words, for a pointer resting on it and for screen readers (its label is
    the commit alone, ``+`` when the checkout had uncommitted changes)."""


@dataclasses.dataclass(frozen=True)
class TrendChart:
    """Each run's heap growth per request with its interval, against its commit."""

    title: str
    marks: tuple[Mark, ...]
    y_ticks: tuple[Tick, ...]
    zero: float
    """Where 0 B/request is: above it the heap grew."""
    height: int
    bottom: int


def trend_chart(rows: Sequence[TrendRow]) -> TrendChart | None:
    """The runs' growth per request, oldest first, evenly spaced (runs are commits, not
    times), each with its interval as a vertical bar, this run red and the history's
    blue; the value axis always shows 0. ``None`` without runs."""
    if not rows:
        return None
    values = [v for r in rows for v in (r.growth.low, r.growth.high, r.growth.slope)] + [0.0]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.08, 0.05)
    y_low, y_high = (low - pad if low < 0 else 0.0), (high + pad if high > 0 else pad)
    longest = max(len(r.commit) + 1 for r in rows)
    bottom = 24 + round(longest * CHAR_PX * math.sin(math.radians(TREND_SLANT)))
    step = (WIDTH - LEFT - RIGHT) / len(rows)

    def py(value: float) -> float:
        return TOP + (1 - (value - y_low) / (y_high - y_low)) * TREND_PLOT

    marks = tuple(
        Mark(
            x=LEFT + (i + 0.5) * step,
            slope=py(r.growth.slope),
            low=py(r.growth.low),
            high=py(r.growth.high),
            label=r.commit + ("+" if r.uncommitted else ""),
            colour=COLOURS[0] if r.current else COLOURS[1],
            tip=f"{r.name}{' (this run)' if r.current else ''}, {r.recorded}: {rate(r.growth)}",
        )
        for i, r in enumerate(rows)
    )
    ticks = nice_ticks(y_low, y_high)
    return TrendChart(
        "Heap growth (B/request) of each run, oldest first",
        marks,
        tuple(Tick(py(y), f"{y:,.{_decimals(ticks)}f}") for y in ticks),
        py(0.0),
        TOP + TREND_PLOT + bottom,
        bottom,
    )


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values spanning ``low``..``high`` (steps of 1, 2 or 5 times a power of 10)."""
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _decimals(ticks: list[float]) -> int:
    """Decimals enough to tell the ticks apart (none for steps of 1 or more)."""
    if len(ticks) < 2:
        return 1
    return max(0, -math.floor(math.log10(ticks[1] - ticks[0]) + 1e-9))


def chart(
    title: str,
    series: list[Line],
    markers: list[tuple[float, str]],
    unit: float = 2**20,
    x_max: float | None = None,
    area: tuple[Line, Line] | None = None,
    guides: Sequence[Line] = (),
) -> Chart:
    """Lines of values against requests, scaled into the SVG's plot area; values are
    divided by ``unit`` (bytes shown in MiB unless told otherwise). ``x_max``: the end
    of the requests axis (every chart of a page shares one), else the lines' own. A
    value axis that does not start at 0 says so in the title. ``area`` (its lower and
    upper edge, the label the lower's) is shaded, and the value axis spans it too;
    ``guides`` are dashed, cut at the plot's edges (a label says when one lies wholly
    above or below it)."""
    x_max = x_max or max(max(line.requests) for line in series) or 1.0
    drawn: list[Line] = [*series, *(area or ())]
    values = [v / unit for line in drawn for v in line.values]
    y_low, y_high = min(values), max(values)
    pad = max((y_high - y_low) * 0.08, 0.05)
    y_low, y_high = max(y_low - pad, 0.0), y_high + pad
    if y_low > 0:
        title += f" (the axis starts at {y_low:,.{_decimals(nice_ticks(y_low, y_high))}f}, not 0)"
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + x / x_max * plot_w

    def py(mib: float) -> float:
        return TOP + (1 - (mib - y_low) / (y_high - y_low)) * plot_h

    def svg(line: Line) -> list[str]:
        return [
            f"{px(x):.1f},{py(v / unit):.1f}"
            for x, v in zip(line.requests, line.values, strict=True)
        ]

    polylines = tuple(
        (line.label, COLOURS[i % len(COLOURS)], " ".join(svg(line)))
        for i, line in enumerate(series)
    )
    x_ticks, y_ticks = nice_ticks(0, x_max), nice_ticks(y_low, y_high)
    keys = [len(label) * CHAR_PX + 36 for label, _, _ in polylines]
    legend_at = tuple(float(sum(keys[:i])) for i in range(len(keys)))
    return Chart(
        title,
        polylines,
        tuple(Tick(px(x), f"{x:,.{_decimals(x_ticks)}f}") for x in x_ticks),
        tuple(Tick(py(y), f"{y:,.{_decimals(y_ticks)}f}") for y in y_ticks),
        tuple(Tick(px(x), label) for x, label in markers if 0 <= x <= x_max),
        (area[0].label, " ".join(svg(area[0]) + svg(area[1])[::-1])) if area else None,
        tuple(
            (
                _off_scale(line, y_low * unit, y_high * unit),
                GUIDES[i % len(GUIDES)],
                "M" + " L".join(svg(line)),
            )
            for i, line in enumerate(guides)
        ),
        legend_at=legend_at,
    )


def _off_scale(line: Line, low: float, high: float) -> str:
    """A guide's label, saying so when it lies wholly above or below the value axis."""
    if min(line.values) > high:
        return f"{line.label}, above the chart"
    if max(line.values) < low:
        return f"{line.label}, below the chart"
    return line.label


def gc_line(result: RunResult) -> Line:
    """Time spent collecting per request between consecutive curve points, in µs."""
    gc = result.gc
    assert gc is not None
    points = result.curve.points
    xs, ys = [], []
    for i in range(1, len(points)):
        served = points[i].requests - points[i - 1].requests
        if served > 0:
            xs.append(points[i].requests)
            ys.append((gc.seconds[i] - gc.seconds[i - 1]) / served * 1e6)
    return Line("this run", tuple(xs), tuple(ys))


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gate.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = size
    env.filters["rate"] = rate
    env.filters["growth"] = rate
    return env.get_template("report.html.j2")


def _why(report: Report) -> str:
    """The verdict's reason in one line: the finding a one-line summary names."""
    worst = worst_finding(report.decision.findings)
    return worst.message if worst else "nothing past the history's noise, no budget exceeded"


def render_html(report: Report) -> str:
    result = report.result
    markers = [
        (float(result.curve.warmup_requests), "warm-up ends"),
        (result.analysis.steady.requests, "steady state"),
    ]
    curves = {metric: lines(report, metric) for metric in ("heap", "rss")}
    x_max = max(max(line.requests) for series in curves.values() for line in series) or 1.0
    charts = [
        chart(
            f"{title} (MiB) against requests",
            curves[metric],
            markers,
            x_max=x_max,
            area=history_range(report, metric),
            guides=limit_lines(report, metric, x_max),
        )
        for metric, title in (("heap", "Heap"), ("rss", "Anonymous RSS"))
    ]
    grew = growing_processes(result)
    requests = tuple(p.requests for p in result.curve.points)
    processes = [
        {
            "name": process_name(process),
            "capture": process.capture,
            "steady": process.heap[result.analysis.steady.index],
            "end": process.heap[-1],
            "growth": process_growth(process),
            "grows": process in grew,
        }
        for process in result.process_curves
    ]
    if result.process_curves:
        per_process = [
            Line(
                f"{process_name(p)}{' (grows)' if p in grew else ''}",
                requests[p.running[0] : p.running[1] + 1],
                tuple(float(v) for v in p.heap[p.running[0] : p.running[1] + 1]),
            )
            for p in result.process_curves
        ]
        title = "Heap of each process (MiB) against requests"
        charts.append(chart(title, per_process, markers, x_max=x_max))
    gc = gc_line(result) if result.gc is not None else None
    if gc is not None and len(gc.values) > 1:
        title = "Garbage collection (µs per request) against requests"
        charts.append(chart(title, [gc], markers, unit=1.0, x_max=x_max))
    findings = [
        {
            "severity": f.severity.value,
            "metric": f.metric,
            "baseline": baseline_text(f),
            "current": quantity(f.current, f.unit) if f.current is not None else "",
            "change": change(f),
            "message": f.message,
            "where": where(f.where),
            "link": code_link(result, f.where),
        }
        for f in report.decision.findings
    ]
    sites = [
        {
            "site": site,
            "where": where(site.frame),
            "link": code_link(result, site.frame),
            "user": site.in_user_code,
            "stack": [
                (frame, shown_file(frame.file), code_link(result, frame))
                for frame in service_frames(site.stack)
            ],
        }
        for site in growing_sites(result.sites, SITES)
    ]
    retention = result.retention
    kinds = {
        "container": "container (items)",
        "native": "held by native code (objects)",
        "type": "objects of a type",
    }
    several = retention is not None and several_processes(retention)
    retained = [
        {"item": r, "kind": kinds[r.kind], "several": several}
        for r in (retention.retained if retention else ())
    ]
    trend = history_trend(report)
    return _template().render(
        report=report,
        trend=trend,
        trend_chart=trend_chart(trend),
        slant=TREND_SLANT,
        run_colours=COLOURS[:2],
        retained=retained,
        changed=dependency_notes(report),
        uncommitted=changed_files(result.provenance, most=20),
        census=census_text(result),
        nothing_retained=nothing_retained(retention).capitalize() if retention else "",
        result=result,
        decision=report.decision,
        passed=report.decision.verdict is Outcome.PASS,
        baseline=report.baseline,
        charts=charts,
        findings=findings,
        sites=sites,
        no_sites=no_sites_text(result),
        unexplained=unexplained_text(result),
        processes=processes,
        resources=resources_text(result),
        why=_why(report),
        heap_reason=curve_reason(report, "heap"),
        rss_reason=curve_reason(report, "rss"),
        capture=capture_text(result.capture),
        size=(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM),
        area=AREA,
        accept=f"memgate baseline accept {shlex.quote(report.result_path or 'RESULT.json')}"
        ' --reason "why this growth is expected"',
    )
