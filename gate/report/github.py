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
from typing import Literal

import github_action_utils as gau

from gate.merge import Merged
from gate.outcome import Outcome
from gate.report.parts import Report, is_user_frame, source_path, where

LEVEL: dict[Outcome, Literal["error", "warning"]] = {
    Outcome.FAIL: "error",
    Outcome.FLAG: "warning",
}


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
    one, so the line shows one error that lists them all."""
    merged: dict[tuple[Literal["error", "warning"], str | None, int | None], list[str]] = {}
    for finding in report.decision.findings:
        file = line = None
        frame = finding.where
        if frame is not None and is_user_frame(report.result, frame):
            file = source_path(report.result, frame, workspace)
            line = frame.line if file else None
        merged.setdefault((LEVEL[finding.severity], file, line), []).append(finding.message)
    name = report.result.scenario.key
    out = []
    for (level, file, line), messages in merged.items():
        what = "memory regression" if level == "error" else "memory flag"
        title = f"memgate {name}: {what}"
        if len(messages) > 1:
            title += f" ({len(messages)} findings)"
        out.append(Annotation(level, title, "\n".join(messages), file, line))
    return out


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
    """The workflow commands, one line each."""
    buffer = io.StringIO()
    emit = {"error": gau.error, "warning": gau.warning}
    with contextlib.redirect_stdout(buffer):
        for a in items:
            emit[a.level](a.message, title=a.title, file=a.file, line=a.line)
    return buffer.getvalue()


def render_github(report: Report, workspace: str) -> str:
    return render_annotations(annotate(report, workspace))


def render_merged_github(merged: Merged) -> str:
    return render_annotations(annotate_merged(merged))
