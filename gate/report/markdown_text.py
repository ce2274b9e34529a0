"""Text safe in GitHub's Markdown: escaped names, code spans and fenced blocks, for the
job summary and the pull-request comment."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#~!&$])")
_AUTOLINK = re.compile(r"(:)(?=//)|(?<=www)(\.)", re.IGNORECASE)
"""Where GitHub's renderer would start a link in plain text (``http://``, ``www.``): an
escaped ``:`` or ``.`` reads the same and starts none."""


def md(text: str) -> str:
    """Text safe anywhere in a line of Markdown, table cells included: no markup, and
    no link GitHub would make of a name (``http://x.py``, ``www.x``, ``a@b.c``)."""
    escaped = _SPECIAL.sub(r"\\\1", " ".join(text.split()))
    escaped = _AUTOLINK.sub(lambda m: "\\" + (m[1] or m[2]), escaped)
    # An address is linked whatever is escaped: an empty comment splits the text there.
    return escaped.replace("@", "@<!-- -->")


def code(text: str, *, cell: bool = False) -> str:
    """Inline code, or escaped text when the code span could not hold it. In a table
    ``cell``, a pipe is escaped even inside the code span (GitHub's rule)."""
    text = " ".join(text.split())
    if "`" in text or (cell and "\\" in text):  # a backslash would escape the pipe's escape
        return md(text)
    return "`" + (text.replace("|", "\\|") if cell else text) + "`"


def fenced(text: str, info: str = "") -> str:
    """A fenced block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"
