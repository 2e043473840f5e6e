"""Sitemaps and feeds: the URL lists news sites publish for crawlers. Pure: no network.

:func:`parse_url_list` reads one fetched body, whatever it is:

- an XML sitemap (``<urlset>``: page URLs) or a sitemap index (``<sitemapindex>``: more sitemaps);
- an RSS 2.0 / RSS 1.0 (RDF) feed (``<item><link>``) or an Atom feed (``<entry><link href>``);
- a plain-text sitemap (one URL per line);
- any of them gzipped (``sitemap.xml.gz``), inflated up to :data:`MAX_LIST_BYTES`.

The crawler (:mod:`.crawler`) fetches these through its own fetcher, so robots.txt, politeness, domain and
depth limits apply to them exactly as to pages; the page URLs they list join the frontier as seeds.
"""

from __future__ import annotations

import dataclasses
import zlib

from seqlab.data.urls import normalize_url

__all__ = ["MAX_LIST_BYTES", "UrlList", "UrlListError", "parse_url_list"]

MAX_LIST_BYTES = 50 * 1024 * 1024  # the sitemap protocol's own cap on one (uncompressed) sitemap
_GZIP_MAGIC = b"\x1f\x8b"


@dataclasses.dataclass(frozen=True)
class UrlList:
    """What one sitemap or feed lists.

    Attributes:
        kind: ``urlset``, ``sitemapindex``, ``rss``, ``atom``, ``text``; ``unknown`` when unreadable.
        pages: normalized page URLs, in document order, no repeats.
        sitemaps: normalized URLs of further sitemaps (a sitemap index's entries).
    """

    kind: str
    pages: list[str]
    sitemaps: list[str]


class UrlListError(ValueError):
    """A body that is no sitemap or feed (or inflates past :data:`MAX_LIST_BYTES`)."""


def _gunzip(body: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_LIST_BYTES + 1)
    except zlib.error as exc:
        raise UrlListError(f"bad gzip data: {exc}") from None
    if len(data) > MAX_LIST_BYTES:
        raise UrlListError(f"inflates past {MAX_LIST_BYTES} bytes")
    if not inflater.eof:
        raise UrlListError("bad gzip data: the stream is cut short")
    return data


def _local(tag: object) -> str:
    """An element's tag without its namespace (``{http://www.sitemaps.org/...}url`` -> ``url``)."""
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _unique(urls: list[str | None]) -> list[str]:
    return list(dict.fromkeys(u for u in urls if u))


def parse_url_list(body: bytes, base_url: str) -> UrlList:
    """The page URLs and sitemap URLs one sitemap or feed lists (relative URLs resolve against
    ``base_url``; non-http(s) ones are dropped).

    Raises:
        UrlListError: the body is neither XML of a known kind nor a list of URLs.
    """
    if body.startswith(_GZIP_MAGIC):
        body = _gunzip(body)
    head = body.lstrip()[:1]
    if head != b"<":
        lines = (line.strip() for line in body.decode("utf-8", "replace").splitlines())
        pages = _unique([normalize_url(u) for u in lines if u.lower().startswith(("http://", "https://"))])
        if not pages:
            raise UrlListError("neither XML nor a list of URLs")
        return UrlList("text", pages, [])

    import lxml.etree

    # No entities resolved, no network, no huge trees: a hostile sitemap cannot reach files or blow up.
    parser = lxml.etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = lxml.etree.fromstring(body, parser=parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise UrlListError(f"unreadable XML: {exc}") from None
    if root is None:
        raise UrlListError("unreadable XML")
    kind = _local(root.tag)

    def locs(entry: str) -> list[str | None]:
        return [
            normalize_url((loc.text or "").strip(), base_url)
            for el in root.iter()
            if _local(el.tag) == entry
            for loc in el
            if _local(loc.tag) == "loc"
        ]

    if kind == "urlset":
        return UrlList("urlset", _unique(locs("url")), [])
    if kind == "sitemapindex":
        return UrlList("sitemapindex", [], _unique(locs("sitemap")))
    if kind in ("rss", "rdf"):  # RSS 2.0 <rss><channel><item>, RSS 1.0 <rdf:RDF><item>
        links = []
        for item in root.iter():
            if _local(item.tag) != "item":
                continue
            for child in item:
                if _local(child.tag) == "link" and (child.text or "").strip():
                    links.append(normalize_url(child.text.strip(), base_url))
                    break
        return UrlList("rss", _unique(links), [])
    if kind == "feed":  # Atom: the entry's rel="alternate" link (the default rel)
        links = []
        for entry in root.iter():
            if _local(entry.tag) != "entry":
                continue
            for child in entry:
                if _local(child.tag) == "link" and child.get("rel", "alternate") == "alternate":
                    links.append(normalize_url(child.get("href", "").strip(), base_url))
                    break
        return UrlList("atom", _unique(links), [])
    raise UrlListError(f"<{kind}> is not a sitemap, a sitemap index, an RSS or an Atom feed")
