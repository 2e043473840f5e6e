"""Sitemaps and feeds: parsing each kind, and a crawl that starts from them on a tiny local site."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from aiohttp import web
from test_scrape import Site, by_path, page, sources  # tests/data is on sys.path (no package)

from seqlab.data.config import SourcesConfig
from seqlab.data.scrape import MemorySink, crawl
from seqlab.data.scrape import discover as discover_mod
from seqlab.data.scrape.discover import UrlListError, parse_url_list

BASE = "http://news.example/"
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*locs: str) -> bytes:
    entries = "".join(f"<url><loc>{loc}</loc><lastmod>2024-01-01</lastmod></url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{entries}</urlset>'.encode()


def index(*locs: str) -> bytes:
    entries = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0"?><sitemapindex {NS}>{entries}</sitemapindex>'.encode()


def rss(*links: str) -> bytes:
    items = "".join(f"<item><title>خبر</title><link>{link}</link></item>" for link in links)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>أخبار</title>{items}</channel></rss>'.encode()


def atom(*links: str) -> bytes:
    entries = "".join(
        f'<entry><title>خبر</title><link rel="enclosure" href="{link}.mp3"/><link href="{link}"/></entry>'
        for link in links
    )
    return f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">{entries}</feed>'.encode()


# --- parsing -----------------------------------------------------------------------------------------


def test_each_kind_lists_its_urls_in_order_without_repeats():
    got = parse_url_list(urlset("http://news.example/a", "/b", "http://news.example/a", "mailto:x@y"), BASE)
    assert (got.kind, got.pages, got.sitemaps) == ("urlset", [BASE + "a", BASE + "b"], [])
    got = parse_url_list(index("/s1.xml", "http://news.example/s2.xml.gz"), BASE)
    assert (got.kind, got.pages, got.sitemaps) == ("sitemapindex", [], [BASE + "s1.xml", BASE + "s2.xml.gz"])
    assert parse_url_list(rss("/x", "/y"), BASE).pages == [BASE + "x", BASE + "y"]
    assert parse_url_list(atom("/x", "/y"), BASE).pages == [BASE + "x", BASE + "y"]  # rel=alternate only
    rdf = (
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">'
        b"<item><link>http://news.example/r</link></item></rdf:RDF>"
    )
    assert parse_url_list(rdf, BASE).pages == [BASE + "r"]
    text = b"http://news.example/t1\n\n  https://news.example/t2  \nnot a url\n"
    assert parse_url_list(text, BASE).pages == [BASE + "t1", "https://news.example/t2"]
    assert parse_url_list(gzip.compress(urlset("/g")), BASE).pages == [BASE + "g"]


@pytest.mark.parametrize(
    "body, says",
    [
        (b"<html><body><p>not a sitemap</p></body></html>", "is not a sitemap"),
        (b"just words, no urls", "neither XML nor a list of URLs"),
        (b"\x1f\x8b\x08\x00garbage", "bad gzip data"),
    ],
)
def test_a_body_that_lists_nothing_is_an_error_naming_why(body, says):
    with pytest.raises(UrlListError, match=says):
        parse_url_list(body, BASE)


def test_a_gzip_bomb_stops_at_the_cap(monkeypatch):
    monkeypatch.setattr(discover_mod, "MAX_LIST_BYTES", 10_000)
    bomb = gzip.compress(b"<urlset>" + b" " * 1_000_000 + b"</urlset>")
    with pytest.raises(UrlListError, match="inflates past 10000 bytes"):
        parse_url_list(bomb, BASE)


def test_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("http://news.example/leaked", encoding="utf-8")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file://{secret}">]>'
        f"<urlset {NS}><url><loc>&x;</loc></url><url><loc>http://news.example/ok</loc></url></urlset>"
    ).encode()
    assert parse_url_list(body, BASE).pages == [BASE + "ok"]


def test_sources_take_sitemaps_and_feeds_and_their_hosts_become_the_domains():
    cfg = SourcesConfig(sitemaps=["https://a.example/sitemap.xml"], feeds=["https://b.example/rss"])
    assert cfg.allowed_domains == ["a.example", "b.example"] and cfg.seeds == []
    with pytest.raises(ValueError, match=r"sitemap 'ftp://a\.example/s\.xml' is not an http"):
        SourcesConfig(sitemaps=["ftp://a.example/s.xml"])


# --- a crawl that starts from them ---------------------------------------------------------------------


def raw(body: bytes, content_type: str) -> object:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    return handler


def discovery_site() -> dict[str, object]:
    """The home page links nothing: every article is known from robots.txt's sitemap index and a feed."""
    routes = {"/": page("<p>الصفحة الرئيسية</p>")}
    for name in ("a", "b", "c", "d", "e"):
        routes[f"/news/{name}.html"] = page(f'<a href="/deeper/{name}.html">المزيد</a>')
        routes[f"/deeper/{name}.html"] = page("")
    routes["/private/p.html"] = page("")
    routes["/sitemap_index.xml"] = raw(index("/sitemap-news.xml.gz", "/sitemap-old.xml"), "application/xml")
    gz = gzip.compress(urlset("/news/a.html", "/news/b.html", "http://elsewhere.example/x.html"))
    routes["/sitemap-news.xml.gz"] = raw(gz, "application/gzip")
    routes["/sitemap-old.xml"] = raw(urlset("/news/c.html", "/private/p.html"), "text/xml")
    routes["/rss.xml"] = raw(rss("/news/d.html", "/news/a.html"), "application/rss+xml")
    routes["/atom.xml"] = raw(atom("/news/e.html"), "application/atom+xml")
    routes["/private/feed.xml"] = raw(rss("/news/z.html"), "application/rss+xml")
    return routes


ROBOTS = "User-agent: *\nDisallow: /private/\nSitemap: {base}/sitemap_index.xml\n"


def crawl_discovery(name_the_index: bool = True, **kw):
    async def main():
        async with Site(discovery_site(), robots=None) as site:
            site.robots = ROBOTS.format(base=site.base)
            feeds = ["/rss.xml", "/atom.xml", "/missing-feed.xml", "/private/feed.xml"]
            cfg = sources(
                site,
                feeds=[site.url(f) for f in feeds],
                # robots.txt names it too: still read once
                sitemaps=[site.url("/sitemap_index.xml")] if name_the_index else [],
                per_host_concurrency=1,
                **kw,
            )
            sink = MemorySink()
            stats = await crawl(cfg, sink=sink)
            return stats, sink, site

    return asyncio.run(main())


def test_a_crawl_starts_from_robots_sitemaps_indexes_gzip_and_feeds_politely():
    stats, sink, site = crawl_discovery(max_depth=0)
    outcomes = by_path(sink, site)
    # every listed page of the allowed domain, as a seed (depth 0: what they link is beyond max_depth)
    assert {p: o for p, o in outcomes.items() if p.startswith("/news/")} == {
        f"/news/{n}.html": "ok" for n in "abcde"
    }
    assert not any(p.startswith("/deeper/") for p in site.hits)
    assert outcomes["/private/p.html"] == "robots_disallowed" and site.hits["/private/p.html"] == 0
    assert "/x.html" not in site.hits  # the sitemap's off-domain entry was never asked for
    # a sitemap or feed that fails is a failure of stage "discover"; the ones that worked leave no record
    failed = {f["url"].removeprefix(site.base): f for f in sink.failures}
    assert failed["/missing-feed.xml"]["stage"] == "discover" and outcomes["/missing-feed.xml"] == "http_404"
    assert not {"/sitemap_index.xml", "/rss.xml", "/sitemap-news.xml.gz"} & set(outcomes)
    assert failed["/private/feed.xml"]["stage"] == "discover" and site.hits["/private/feed.xml"] == 0
    # listed: a, b, the off-domain x, c, private, d, a (again), e
    assert stats.discovered == 8 and "discovered 8" in stats.line()
    # lists before pages (they sort ahead of depth 0), one request in flight at a time
    first_page = min(t for path, ts in site.starts.items() if path.startswith("/news/") for t in ts)
    assert max(site.starts["/sitemap-old.xml"]) < first_page and site.max_in_flight == 1
    assert all(n == 1 for path, n in site.hits.items())  # nothing fetched twice


def test_robots_sitemaps_can_be_switched_off_and_depth_still_applies():
    _, sink, site = crawl_discovery(False, max_depth=1, robots_sitemaps=False)
    outcomes = by_path(sink, site)
    assert "/sitemap_index.xml" not in site.hits and "/news/b.html" not in outcomes  # only in the sitemaps
    assert outcomes["/news/d.html"] == outcomes["/deeper/d.html"] == "ok"  # feed entry, then one hop
