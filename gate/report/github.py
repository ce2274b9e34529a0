"""Findings as GitHub workflow-command annotations: ``::error`` for failures,
``::warning`` for flags, on the line of the user's code that grew.

The commands are built by github-action-utils, which escapes message data (``%``, CR,
LF) and property values (also ``:`` and ``,``): a file or function name from the
measured code cannot end its command early or start another. Its functions print, so
they print into a buffer here and the reporter still returns a string.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import github_action_utils as gau

from gate.dependencies import normalize
from gate.merge import Merged
from gate.model import Frame
from gate.observed import Retained
from gate.outcome import Outcome
from gate.report.keepers import (
    GROWTH_CHECKS,
    Kept,
    by_keeper,
    keeper,
    keeper_heading,
    keepers,
    keeps_alive,
)
from gate.report.links import source_path
from gate.report.parts import is_user_frame, native_at, where
from gate.report.report import Report, is_growth

LEVEL: dict[Outcome, Literal["error", "warning"]] = {
    Outcome.FAIL: "error",
    Outcome.FLAG: "warning",
}


MOST_MESSAGES = 5
"""Findings written out in one annotation; the rest are counted (a leak through a web
framework made 34 findings at one line: an annotation of 6 KB)."""
MOST_CHARACTERS = 4000
"""An annotation's message at most, cut with an ellipsis."""


@dataclasses.dataclass(frozen=True)
class Annotation:
    level: Literal["error", "warning"]
    title: str
    message: str
    file: str | None = None
    """Relative to the workspace; ``None`` for an annotation on the run as a whole."""
    line: int | None = None


Place = tuple[Literal["error", "warning"], str | None, int | None]


def annotate(report: Report, workspace: str) -> list[Annotation]:
    """One annotation per place and level: findings at the same line are merged into
    one, so the line shows one error that lists them all. A finding in the files of a
    distribution whose version changed since the compared runs is placed on the line
    of the workspace that pins it (a dependency upgrade's pull request gets it on the
    upgraded line), else on the run. A finding in the service's code whose stack goes
    through such a distribution is placed on its line and on the pin's, and memory that
    grew natively while one distribution changed on the pin's, each saying why that is
    the likely cause (:meth:`Report.cause`); native growth while several changed says
    so on the run.

    When the census names what keeps the memory alive, the site findings at a line are
    listed under the keeper that explains them (:func:`by_keeper`), and each line of
    the service that adds to a keeper is annotated too (unless the annotation there
    names it already), saying where the allocation is."""
    result = report.result
    merged: dict[Place, list[tuple[str, int | None]]] = {}
    changed = {c.name: c for c in report.changes}
    _, groups = by_keeper(result, report.decision.findings)
    group_of = {id(f): at for at, group in enumerate(groups) for f in group.findings}
    grew: set[Place] = set()
    for finding in report.decision.findings:
        file = line = None
        frame = finding.where
        message = finding.message
        group = group_of.get(id(finding))
        native = native_at(result, frame)
        if native is not None:
            message += f" (native: {native})"
        cause = report.cause(finding)
        if frame is not None and is_user_frame(result, frame):
            file = source_path(result, frame, workspace)
            line = frame.line if file else None
            if cause is not None:
                through = report.changed_under(frame) == cause.change.name
                message += f" (through {cause.change.text()})" if through else f" ({cause.text()})"
                pinned = pin_line(Path(workspace), cause.change.name)
                if pinned is not None and pinned != (file, line):
                    placed = (LEVEL[finding.severity], *pinned)
                    said = f"{message} at {where(frame)}" + f"; {cause.text()}" * through
                    merged.setdefault(placed, []).append((said, group))
        elif (name := report.owner(frame)) in changed:
            message += f" (in {changed[name].text()})"
            pinned = pin_line(Path(workspace), changed[name].name)
            if pinned is not None:
                file, line = pinned
        elif cause is not None:
            message += f" ({cause.text()})"
            pinned = pin_line(Path(workspace), cause.change.name)
            if pinned is not None:
                file, line = pinned
        if cause is None and is_growth(finding) and report.suspects():
            message += f" ({report.suspects()})"
        place = (LEVEL[finding.severity], file, line)
        merged.setdefault(place, []).append((message, group))
        if finding.check in GROWTH_CHECKS:
            grew.add(place)
    first = result.retention.retained[0] if result.retention and result.retention.retained else None
    named = {
        place: {groups[g].keeper for _, g in items if g is not None}
        | ({first} if place in grew else set())
        for place, items in merged.items()
    }
    adds = _adding_lines(report, workspace, groups, named)
    name = result.scenario.key
    out = []
    for place in [*merged, *(p for p in adds if p not in merged)]:
        level, file, line = place
        items = merged.get(place, [])
        what = "memory regression" if level == "error" else "memory flag"
        title = f"memgate {name}: {what}"
        if len(items) > 1:
            title += f" ({len(items)} findings)"
        shown = [*adds.get(place, []), *_listed(items, groups)]
        headed = {groups[g].keeper for _, g in items if g is not None}
        if first is not None and place in grew and first not in headed:
            text = keeper(result)  # once, after the findings it explains
            shown.append(text[0].upper() + text[1:])
        out.append(Annotation(level, title, _cut("\n".join(shown), MOST_CHARACTERS), file, line))
    return out


def _listed(items: list[tuple[str, int | None]], groups: tuple[Kept, ...]) -> list[str]:
    """An annotation's findings: those on their own, then each keeper's sites under it;
    :data:`MOST_MESSAGES` in all, the rest counted."""
    most = MOST_CHARACTERS // (MOST_MESSAGES + 1)
    alone = [m for m, g in items if g is None]
    shown = [_cut(m, most) for m in alone[:MOST_MESSAGES]]
    if len(alone) > MOST_MESSAGES:
        shown.append(f"and {len(alone) - MOST_MESSAGES} more here: see the job summary")
    room = max(MOST_MESSAGES - len(alone), 0)
    for at in sorted({g for _, g in items if g is not None}):
        sites = [m for m, g in items if g == at]
        shown.append(f"{keeper_heading(groups[at])}:")
        shown += [f"- {_cut(m, most)}" for m in sites[:room]]
        if len(sites) > room:
            shown.append(f"- and {len(sites) - room} more here: see the job summary")
        room = max(room - len(sites), 0)
    return shown


def _adding_lines(
    report: Report,
    workspace: str,
    groups: tuple[Kept, ...],
    named: dict[Place, set[Retained | None]],
) -> dict[Place, list[str]]:
    """The lines that add to a keeper, each with what it keeps alive and where the
    allocation is (the first site it explains, else the leak's line), when memory grew;
    none where the annotation of that line names the keeper already."""
    growth = [f for f in report.decision.findings if f.check in GROWTH_CHECKS or is_growth(f)]
    if not growth:
        return {}
    level = LEVEL[Outcome.worst(f.severity for f in growth)]
    leak = next((f.where for f in growth if f.where is not None), None)
    out: dict[Place, list[str]] = {}
    for at, retained in enumerate(keepers(report.result.retention)):
        allocated = next((g.findings[0].where for g in groups if g.keeper == retained), None)
        message = keeps_alive(retained, allocated or (leak if at == 0 else None))
        for added in retained.adds:
            frame = Frame(added.function, added.file, added.line)
            file = source_path(report.result, frame, workspace)
            if file is None:
                continue
            if any(retained in k for (_, f, n), k in named.items() if (f, n) == (file, added.line)):
                continue
            out.setdefault((level, file, added.line), []).append(message)
    return out


def _cut(text: str, most: int) -> str:
    """``text``, at most ``most`` characters: cut with an ellipsis."""
    return text if len(text) <= most else text[: most - 1] + "\u2026"


PIN_FILES = (
    "requirements*.txt",
    "requirements/*.txt",
    "pyproject.toml",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
)
"""Where a workspace pins its dependencies, in the order they are looked in."""
PIN_MAX_BYTES = 4 * 2**20
_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]*)"
_PIN_LINES = {
    ".txt": re.compile(rf"^\s*{_NAME}\s*(?:\[[^\]]*\])?\s*(?:[=<>!~;@ ]|$)"),
    "pyproject.toml": re.compile(
        rf"""^\s*(?:["']{_NAME}\s*(?:\[[^\]]*\])?\s*[=<>!~;@"' ]|{_NAME}\s*=)"""
    ),
    ".lock": re.compile(rf"""^\s*(?:name\s*=\s*"{_NAME}"|"{_NAME}"\s*:\s*\{{)"""),
}


def pin_line(workspace: Path, name: str) -> tuple[str, int] | None:
    """The first line of the workspace's dependency files that names distribution
    ``name`` (``requirements*.txt``, ``pyproject.toml``, ``uv.lock``, ``poetry.lock``,
    ``Pipfile.lock``): its path relative to the workspace and its number; ``None`` when
    none does."""
    for pattern in PIN_FILES:
        for path in sorted(workspace.glob(pattern), key=lambda p: (p.stem != "requirements", p)):
            rule = _PIN_LINES.get(path.name) or _PIN_LINES.get(path.suffix)
            if rule is None or not path.is_file():
                continue
            try:
                with path.open("rb") as source:
                    text = source.read(PIN_MAX_BYTES).decode("utf-8", "replace")
            except OSError:
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                match = rule.match(line)
                if match and any(normalize(g) == name for g in match.groups() if g):
                    return str(path.relative_to(workspace)), number
    return None


def annotate_merged(merged: Merged) -> list[Annotation]:
    """One annotation per failing or flagged scenario and level, and one per input that
    could not be merged. None is placed on a file: ``report.json`` keeps frames relative
    to the service's folder, which it does not record, and each matrix job's own
    ``memgate check`` has already placed its annotations on the lines."""
    out = []
    for r in merged.reports:
        for severity in (Outcome.FAIL, Outcome.FLAG):
            found = [f for f in r.findings if f.severity is severity]
            if not found:
                continue
            level = LEVEL[severity]
            what = "memory regression" if level == "error" else "memory flag"
            title = f"memgate {r.scenario} ({r.environment}): {what}"
            if len(found) > 1:
                title += f" ({len(found)} findings)"
            lines = [f.message + (f" (at {where(f.where)})" if f.where else "") for f in found]
            out.append(Annotation(level, title, "\n".join(lines)))
    out += [Annotation("error", "memgate: error", str(bad)) for bad in merged.errors]
    return out


def render_annotations(items: list[Annotation]) -> str:
    """The workflow commands, one line each. A line below 1 is left out, as
    ``@actions/core`` leaves it (the runner would reject it)."""
    buffer = io.StringIO()
    emit = {"error": gau.error, "warning": gau.warning}
    with contextlib.redirect_stdout(buffer), _printed_here():
        for a in items:
            line = a.line if a.line is not None and a.line > 0 else None
            emit[a.level](a.message, title=a.title, file=a.file, line=line)
    return buffer.getvalue()


@contextlib.contextmanager
def _printed_here() -> Iterator[None]:
    """github-action-utils prints through a subprocess when ``COMMANDS_USE_SUBPROCESS``
    is set in the environment: the commands would go to the terminal, past the buffer
    (and ``--out``). The reporter returns a string: print them in this process."""
    was = gau.COMMANDS_USE_SUBPROCESS
    gau.COMMANDS_USE_SUBPROCESS = False
    try:
        yield
    finally:
        gau.COMMANDS_USE_SUBPROCESS = was


def render_github(report: Report, workspace: str) -> str:
    return render_annotations(annotate(report, workspace))


def render_merged_github(merged: Merged) -> str:
    return render_annotations(annotate_merged(merged))
