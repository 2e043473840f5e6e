"""URL canonical form shared by the crawler (dedup), the label join and the split hash."""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

_TRACKING_PARAMS = frozenset(
    {"ref", "fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_PCT = re.compile(r"%[0-9a-fA-F]{2}")


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Canonical form of a link, for deduplication; None when it is not an http(s) URL.

    Resolves ``url`` against ``base``; lowercases scheme and host; removes ``.``/``..`` segments, the
    fragment, default ports (80/443) and tracking parameters (``utm_*``, ``ref``, ``fbclid``, ``gclid``
    ...); sorts the query parameters; percent-encodes non-ASCII path characters (so ``/مقال`` and
    ``/%D9%85...`` are one URL) with upper-case escapes. Trailing-slash policy: an empty path becomes
    ``/``; otherwise the path is kept as is, since ``/a`` and ``/a/`` may be different resources (when
    they are not, content deduplication catches the copy).
    """
    url = url.strip()
    if not url:
        return None
    if base and not _ABSOLUTE.match(url):
        try:
            url = urljoin(base, url)
        except ValueError:
            return None
    return normalize_absolute(url)


_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|$)")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 on an absolute path: ``/a/./b/../c`` -> ``/a/c``."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


@functools.lru_cache(maxsize=1 << 16)  # nav links repeat on every page of a site
def normalize_absolute(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        host = parts.hostname.lower().rstrip(".")
        port = parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    if _DOT_SEGMENT.search(path):
        path = _remove_dot_segments(path)
    path = quote(path, safe=_PATH_SAFE)
    if "%" in path:
        path = _PCT.sub(lambda m: m.group(0).upper(), path)
    query = ""
    if parts.query:
        params = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not (k.lower().startswith("utm_") or k.lower() in _TRACKING_PARAMS)
        ]
        query = urlencode(sorted(params), quote_via=quote, safe="/:@!$'()*,;-._~")
    return urlunsplit((scheme, netloc, path, query, ""))
