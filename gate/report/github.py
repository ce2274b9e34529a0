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
from gate.outcome import Outcome
from gate.report.links import source_path
from gate.report.parts import (
    GROWTH_CHECKS,
    is_user_frame,
    keeper,
    native_at,
    where,
)
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


def annotate(report: Report, workspace: str) -> list[Annotation]:
    """One annotation per place and level: findings at the same line are merged into
    one, so the line shows one error that lists them all. A finding in the files of a
    distribution whose version changed since the compared runs is placed on the line
    of the workspace that pins it (a dependency upgrade's pull request gets it on the
    upgraded line), else on the run. A finding in the service's code whose stack goes
    through such a distribution is placed on its line and on the pin's, and memory that
    grew natively while one distribution changed on the pin's, each saying why that is
    the likely cause (:meth:`Report.cause`); native growth while several changed says
    so on the run."""
    merged: dict[tuple[Literal["error", "warning"], str | None, int | None], list[str]] = {}
    changed = {c.name: c for c in report.changes}
    kept = keeper(report.result)
    grew: set[tuple[Literal["error", "warning"], str | None, int | None]] = set()
    for finding in report.decision.findings:
        file = line = None
        frame = finding.where
        message = finding.message
        native = native_at(report.result, frame)
        if native is not None:
            message += f" (native: {native})"
        cause = report.cause(finding)
        if frame is not None and is_user_frame(report.result, frame):
            file = source_path(report.result, frame, workspace)
            line = frame.line if file else None
            if cause is not None:
                through = report.changed_under(frame) == cause.change.name
                message += f" (through {cause.change.text()})" if through else f" ({cause.text()})"
                pinned = pin_line(Path(workspace), cause.change.name)
                if pinned is not None and pinned != (file, line):
                    placed = (LEVEL[finding.severity], *pinned)
                    said = f"{message} at {where(frame)}" + f"; {cause.text()}" * through
                    merged.setdefault(placed, []).append(said)
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
        merged.setdefault(place, []).append(message)
        if finding.check in GROWTH_CHECKS:
            grew.add(place)
    name = report.result.scenario.key
    out = []
    for place, messages in merged.items():
        level, file, line = place
        what = "memory regression" if level == "error" else "memory flag"
        title = f"memgate {name}: {what}"
        if len(messages) > 1:
            title += f" ({len(messages)} findings)"
        shown = [_cut(m, MOST_CHARACTERS // (MOST_MESSAGES + 1)) for m in messages[:MOST_MESSAGES]]
        if len(messages) > MOST_MESSAGES:
            shown.append(f"and {len(messages) - MOST_MESSAGES} more here: see the job summary")
        if kept and place in grew:  # once, after the findings it explains
            shown.append(kept[0].upper() + kept[1:])
        out.append(Annotation(level, title, _cut("\n".join(shown), MOST_CHARACTERS), file, line))
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
