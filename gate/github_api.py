"""The only module that calls GitHub's REST API: one sticky comment on a pull request,
written once and updated on each later push (as CodSpeed, Bencher and
github-action-benchmark comment).

The comment is found again by a marker it carries (an HTML comment, invisible on the
page), among the pull request's comments, a hundred a page. The calls are the REST API's
``GET /repos/{repo}/issues/{number}/comments``, ``POST`` to the same, and
``PATCH /repos/{repo}/issues/comments/{id}``, with the workflow's token; the job needs
``permissions: pull-requests: write``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from gate.errors import RunError

MARKER = "<!-- memgate: the memory check's comment -->"
"""Put at the end of the comment's body: what finds it again."""
PAGE = 100
"""Comments asked for a page (the API's most)."""
MOST_PAGES = 50
"""Pages looked through at most for the comment before a new one is written."""
TIMEOUT_S = 30.0
MOST_BODY = 65_000
"""A comment's body at most (the API refuses more than 65,536 characters)."""


def upsert_comment(
    api: str, repository: str, number: int, token: str, body: str, marker: str = MARKER
) -> tuple[str, int]:
    """Write ``body`` as the pull request's memgate comment: update the one carrying
    ``marker`` if there is one, else add one. ``("updated"|"created", comment id)``;
    :class:`RunError` in one line if GitHub refused or could not be reached."""
    text = _fitted(body, marker)
    base = f"{api.rstrip('/')}/repos/{repository}"
    for page in range(1, MOST_PAGES + 1):
        comments = _call(
            "GET", f"{base}/issues/{number}/comments?per_page={PAGE}&page={page}", token
        )
        if not isinstance(comments, list):
            raise RunError(f"GitHub's comments of pull request {number}: not a list")
        for comment in comments:
            if isinstance(comment, dict) and marker in str(comment.get("body") or ""):
                found = int(comment["id"])
                _call("PATCH", f"{base}/issues/comments/{found}", token, {"body": text})
                return "updated", found
        if len(comments) < PAGE:
            break
    made = _call("POST", f"{base}/issues/{number}/comments", token, {"body": text})
    return "created", int(made["id"]) if isinstance(made, dict) and "id" in made else 0


def _fitted(body: str, marker: str) -> str:
    """The body with the marker at its end, cut to what the API takes."""
    room = MOST_BODY - len(marker) - 40
    if len(body) > room:
        body = body[:room] + "\n\n(cut: the whole summary is in the job's summary)"
    return f"{body}\n\n{marker}\n"


def _call(method: str, url: str, token: str, payload: dict[str, Any] | None = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "memgate",
            **({"Content-Type": "application/json"} if data is not None else {}),
        },
    )
    where = f"{method} {urllib.parse.urlsplit(url).path}"
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        said = _message(exc.read())
        hint = (
            " (the job needs permissions: pull-requests: write)" if exc.code in (403, 404) else ""
        )
        raise RunError(f"GitHub refused {where}: HTTP {exc.code}{said}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RunError(f"GitHub could not be reached for {where}: {reason}") from None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise RunError(f"GitHub's answer to {where} is not JSON") from None


def _message(raw: bytes) -> str:
    """`` : Resource not accessible by integration``: the API's own words, if any."""
    try:
        said = json.loads(raw).get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {' '.join(str(said).split())[:200]}" if said else ""
