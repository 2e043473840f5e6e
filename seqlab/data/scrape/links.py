"""The link graph of a page, and URL helpers the crawler runs for every link. Pure: no network."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Container, Iterable
from urllib.parse import urljoin, urlsplit

from seqlab.data.urls import normalize_absolute, normalize_url

__all__ = ["canonical_url", "extract_links", "in_domains", "link_contexts", "url_origin", "visible_text"]

_HREF = re.compile(r"""<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_BASE_HREF = re.compile(r"""<base\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_SKIP_HREF = re.compile(r"#|(?:javascript|mailto|tel|data|whatsapp|sms):", re.IGNORECASE)


def extract_links(html: str, base_url: str) -> list[str]:
    """Normalized http(s) targets of the page's ``<a href>`` links, first-seen order, no repeats.

    A regex rather than an HTML parser: the crawler only needs the link graph, and this is many times
    faster than BeautifulSoup on the event loop (``seqlab bench scrape`` prints both). ``<base href>``
    is honoured; entities in hrefs (``&amp;``) are unescaped.
    """
    base_url, origin = _page_base(html, base_url)
    links: dict[str, None] = {}
    for match in _HREF.finditer(html):
        link = _resolve(match, origin, base_url)
        if link is not None:
            links.setdefault(link, None)
    return list(links)


def _page_base(html: str, base_url: str) -> tuple[str, str]:
    """The URL relative links resolve against (``<base href>`` honoured) and its origin."""
    base_match = _BASE_HREF.search(html)
    if base_match:
        base_url = urljoin(base_url, html_lib.unescape(next(g for g in base_match.groups() if g is not None)))
    parts = urlsplit(base_url)
    return base_url, f"{parts.scheme}://{parts.netloc}"


def _resolve(href_match: re.Match[str], origin: str, base_url: str) -> str | None:
    """The normalized target of an ``href`` match (groups 1-3: its quoted or bare value), or None."""
    raw = (
        href_match.group(1)
        if href_match.group(1) is not None
        else href_match.group(2) or href_match.group(3) or ""
    )
    href = html_lib.unescape(raw).strip() if "&" in raw else raw.strip()
    if not href or _SKIP_HREF.match(href):
        return None
    if href.startswith("/") and not href.startswith("//"):
        return normalize_absolute(origin + href)  # the common case, without urljoin
    return normalize_url(href, base_url)


_ANCHOR = re.compile(r"<a\s([^>]*)>(.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_TITLE_ATTR = re.compile(r"""\btitle\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
CONTEXT_CHARS = 40  # characters of page text kept on each side of a link (a few words: cheap to score)
MAX_CONTEXT_CHARS = 300  # a URL linked many times: its contexts are joined up to this length
MIN_ANCHOR_WORDS = 2  # an anchor + title with fewer words ("2", "next", an icon) says nothing of its target
_WORD = re.compile(r"\w{2,}")


def visible_text(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed (tags dropped, entities unescaped)."""
    text = _TAG.sub(" ", fragment)
    return _SPACE.sub(" ", html_lib.unescape(text) if "&" in text else text).strip()


def _window_text(fragment: str) -> str:
    """:func:`visible_text` of a slice of HTML that may begin or end inside a tag (that part is dropped)."""
    close, open_ = fragment.find(">"), fragment.rfind("<")
    if close >= 0 and "<" not in fragment[:close]:
        fragment = fragment[close + 1 :]
        open_ = fragment.rfind("<")
    if open_ >= 0 and ">" not in fragment[open_:]:
        fragment = fragment[:open_]
    return visible_text(fragment)


def link_contexts(html: str, base_url: str, wanted: Container[str] | None = None) -> dict[str, str]:
    """What a reader knows of each link before following it: ``url -> "title anchor around"``.

    The ``title`` attribute, the anchor text and about :data:`CONTEXT_CHARS` characters of page text on
    each side (a listing's neighbours, a paragraph's words around an inline link), for the same targets
    :func:`extract_links` finds in ``<a>...</a>`` elements (only those in ``wanted`` when given). A link
    whose anchor and title hold fewer than :data:`MIN_ANCHOR_WORDS` words (a pager's "2", an icon) gets
    ``""``: its text says nothing of its target, so the focused crawler ranks it by its page alone. The
    crawl without focus never calls this.
    """
    base_url, origin = _page_base(html, base_url)
    contexts: dict[str, str] = {}
    span = 4 * CONTEXT_CHARS  # of HTML, for CONTEXT_CHARS of text
    for anchor in _ANCHOR.finditer(html):
        href = _TAG_HREF.search(anchor.group(1))
        link = _resolve(href, origin, base_url) if href else None
        if link is None or (wanted is not None and link not in wanted):
            continue
        title = _TITLE_ATTR.search(anchor.group(1))
        title_text = html_lib.unescape(next((g for g in title.groups() if g), "")) if title else ""
        anchor_text = visible_text(anchor.group(2))
        if len(_WORD.findall(title_text + " " + anchor_text)) < MIN_ANCHOR_WORDS:
            contexts.setdefault(link, "")
            continue
        before = _window_text(html[max(0, anchor.start() - span) : anchor.start()])[-CONTEXT_CHARS:]
        after = _window_text(html[anchor.end() : anchor.end() + span])[:CONTEXT_CHARS]
        own = " ".join(part for part in (title_text, anchor_text, before, after) if part)
        earlier = contexts.get(link)
        contexts[link] = own if not earlier else (earlier + " " + own)[:MAX_CONTEXT_CHARS]
    return contexts


_LINK_TAG = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_REL_CANONICAL = re.compile(r"""\brel\s*=\s*["']?canonical\b""", re.IGNORECASE)
_TAG_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)


def canonical_url(html: str, base_url: str) -> str | None:
    """The normalized ``<link rel="canonical" href>`` of a page, or None."""
    for tag in _LINK_TAG.finditer(html):
        if _REL_CANONICAL.search(tag.group(0)):
            href = _TAG_HREF.search(tag.group(0))
            if href:
                raw = next(g for g in href.groups() if g is not None)
                return normalize_url(html_lib.unescape(raw), base_url)
    return None


def url_origin(url: str) -> str:
    """``scheme://netloc`` of a normalized URL (string slicing: this runs for every link)."""
    slash = url.find("/", url.find("//") + 2)
    return url[:slash] if slash > 0 else url


def in_domains(url: str, domains: Iterable[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in domains)
