"""The only module that reads the GitHub Actions environment.

Outside Actions every function answers ``None`` / ``False``, so the rest of memgate
behaves the same on a laptop.
"""

from __future__ import annotations

import os


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def branch() -> str | None:
    """The pull request's head branch, or the pushed branch."""
    if not in_actions():
        return None
    return os.environ.get("GITHUB_HEAD_REF") or os.environ.get("GITHUB_REF_NAME") or None


def actor() -> str | None:
    """Who triggered the workflow run."""
    if not in_actions():
        return None
    return os.environ.get("GITHUB_ACTOR") or None
