"""What a failure record's ``error`` text means: its short reason and whether it may go away. Pure.

The texts themselves are written by :mod:`.fetch` (``http_404``, ``timeout``, ``non_html: image/png``...),
:mod:`.robots` (``robots_disallowed``) and :mod:`.crawler` (``duplicate_content of <url>``, ``internal_error``).
"""

from __future__ import annotations

import re

__all__ = ["failure_reason", "is_transient"]


def failure_reason(error: str) -> str:
    """The short reason of a failure's ``error`` text: ``"http_404"``, ``"timeout"``, ``"non_html"``..."""
    match = re.match(r"[A-Za-z0-9_]+", error)
    return match.group(0) if match else "unknown"


def is_transient(error: str) -> bool:
    """Whether a failure may go away by itself (timeout, connection error, 408, 429, 5xx): such URLs are
    fetched again by the next run into the same directory. 404s, robots, non-HTML, duplicates stay failed."""
    reason = failure_reason(error)
    if reason in ("timeout", "connection_error"):
        return True
    status = reason.removeprefix("http_")
    return (
        reason.startswith("http_") and status.isdigit() and (status in ("408", "429") or int(status) >= 500)
    )
