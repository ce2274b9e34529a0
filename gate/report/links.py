"""Where a frame's line is: its path in the checkout (for annotations), and its address on
GitHub at the run's commit (for the reports' links)."""

from __future__ import annotations

import os.path
import posixpath
import re
import urllib.parse

from gate.model import Frame, RunResult


def source_path(result: RunResult, frame: Frame, workspace: str) -> str | None:
    """``frame``'s file relative to ``workspace`` (POSIX), or ``None`` when it lies outside.

    Frames are stored relative to the service's working directory when they lie below
    it, so they are resolved against that first."""
    service = result.settings.get("service", {})
    scenario_dir = os.path.dirname(result.scenario.path)
    root = os.path.normpath(os.path.join(scenario_dir, str(service.get("cwd", "."))))
    path = os.path.normpath(os.path.join(root, frame.file))
    workspace = os.path.normpath(workspace)
    if not os.path.isabs(path) or not (path == workspace or path.startswith(workspace + os.sep)):
        return None
    return os.path.relpath(path, workspace).replace(os.sep, "/")


_WEB_ADDRESS = re.compile(r"https?://[^\s()<>\[\]\"'`|]+")
_COMMIT = re.compile(r"[0-9a-f]{7,64}")


def code_link(result: RunResult, frame: Frame | None) -> str | None:
    """``frame``'s line at the run's commit on GitHub, when the run knows its repository,
    its commit and where the service's folder is in the checkout, and the frame is in
    the service's own code (a file some site's user frame is in, below that folder)."""
    provenance = result.provenance
    repository, commit, folder = (
        provenance.repository,
        provenance.commit,
        provenance.repository_path,
    )
    if frame is None or repository is None or commit is None or folder is None:
        return None
    if not _WEB_ADDRESS.fullmatch(repository) or not _COMMIT.fullmatch(commit):
        return None
    own = {site.user_frame.file for site in result.sites if site.user_frame is not None}
    path = posixpath.normpath(posixpath.join(folder, frame.file))
    if frame.file not in own or posixpath.isabs(frame.file) or path.startswith(".."):
        return None
    return f"{repository.rstrip('/')}/blob/{commit}/{urllib.parse.quote(path)}#L{frame.line}"
