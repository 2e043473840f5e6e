"""The polite crawler against tiny aiohttp sites served in the test's own event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from aiohttp import web

from seqlab.data.config import SourcesConfig
from seqlab.data.scrape import (
    CrawlStats,
    MemorySink,
    ParquetSink,
    canonical_url,
    crawl,
    extract_links,
    failure_reason,
    load_content_hashes,
    load_progress,
    normalize_url,
)
from seqlab.data.scrape.politeness import _Host, parse_retry_after

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ALLOW_ALL = "User-agent: *\nAllow: /\n"


# --- a tiny site ------------------------------------------------------------------------------------


def html_page(body: str, title: str = "صفحة", head: str = "") -> str:
    return (
        f'<!DOCTYPE html><html lang="ar"><head><meta charset="utf-8"><title>{title}</title>{head}</head>'
        f"<body>{body}</body></html>"
    )


def links(*paths: str, text: str = "") -> str:
    return "".join(f'<a href="{p}">رابط</a>' for p in paths) + f"<p>{text or 'نص قصير للصفحة.'}</p>"


def page(body: str, status: int = 200, unique: bool = True, **headers: str) -> Handler:
    """A handler serving ``body``; ``unique`` adds the path so that pages never share content."""

    async def handler(request: web.Request) -> web.Response:
        text = body + (f"<p>{request.path}</p>" if unique else "")
        return web.Response(
            status=status,
            body=html_page(text).encode("utf-8"),
            content_type="text/html",
            charset="utf-8",
            headers=headers,
        )

    return handler


class Site:
    """Serve ``routes`` (path -> handler) on 127.0.0.1; count hits, request start times and in-flight."""

    def __init__(self, routes: dict[str, Handler], robots: str | None = ALLOW_ALL, robots_status: int = 200):
        self.routes = routes
        self.robots = robots
        self.robots_status = robots_status
        self.hits: Counter[str] = Counter()
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.all_starts: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.hits[request.path_qs] += 1
        now = time.monotonic()
        self.starts[request.path_qs].append(now)
        if request.path != "/robots.txt":
            self.all_starts.append(now)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt":
            if self.robots is None:
                raise web.HTTPNotFound()
            return web.Response(text=self.robots, status=self.robots_status)
        handler = self.routes.get(request.path_qs) or self.routes.get(request.path)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    async def __aenter__(self) -> Site:
        app = web.Application(middlewares=[self._track])
        app.router.add_get("/{tail:.*}", self._dispatch)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        tcp = web.TCPSite(self.runner, "127.0.0.1", 0)
        await tcp.start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    def url(self, path: str) -> str:
        return self.base + path


def sources(site: Site, seeds: list[str] | None = None, **kw) -> SourcesConfig:
    defaults = {"delay_s": 0.0, "backoff_s": 0.01, "request_timeout_s": 2.0, "retries": 1}
    return SourcesConfig(seeds=seeds or [site.url("/")], **{**defaults, **kw})


def run_site(
    routes: dict[str, Handler], robots: str | None = ALLOW_ALL, robots_status: int = 200, **kw
) -> tuple[CrawlStats, MemorySink, Site, float]:
    async def main() -> tuple[CrawlStats, MemorySink, Site, float]:
        async with Site(routes, robots, robots_status) as site:
            sink = MemorySink()
            started = time.monotonic()
            stats = await crawl(sources(site, **kw), sink=sink)
            return stats, sink, site, time.monotonic() - started

    return asyncio.run(main())


def by_path(sink: MemorySink, site: Site) -> dict[str, str]:
    return {url.removeprefix(site.base): outcome for url, outcome in sink.outcome_by_url().items()}


# --- URLs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("HTTP://Example.COM:80/a/./b/../c#top", None, "http://example.com/a/c"),
        ("https://example.com:443", None, "https://example.com/"),
        ("https://example.com:8443/x", None, "https://example.com:8443/x"),
        (
            "/p?b=2&utm_source=news&a=1&fbclid=zz&ref=home",
            "http://example.com/x/",
            "http://example.com/p?a=1&b=2",
        ),
        ("../up.html", "http://example.com/a/b/c.html", "http://example.com/a/up.html"),
        ("page2.html", "http://example.com/a/b.html", "http://example.com/a/page2.html"),
        ("?page=3", "http://example.com/list.html?page=2", "http://example.com/list.html?page=3"),
        ("//cdn.example.com/x", "https://example.com/", "https://cdn.example.com/x"),
        (
            "/مقالات/خبر.html",
            "http://example.com/",
            "http://example.com/%D9%85%D9%82%D8%A7%D9%84%D8%A7%D8%AA/%D8%AE%D8%A8%D8%B1.html",
        ),
        ("/%d9%85", "http://example.com/", "http://example.com/%D9%85"),
        ("/dir/", "http://example.com/", "http://example.com/dir/"),  # trailing slash kept
        ("mailto:someone@example.com", "http://example.com/", None),
        ("javascript:void(0)", "http://example.com/", None),
        ("ftp://example.com/file", None, None),
        ("http://example.com:notaport/", None, None),
        ("   ", "http://example.com/", None),
    ],
)
def test_normalize_url(url, base, expected):
    assert normalize_url(url, base) == expected


def test_normalize_url_is_idempotent_and_merges_equivalent_forms():
    forms = [
        "http://EXAMPLE.com/news/?utm_medium=x&id=7",
        "http://example.com:80/news/?id=7#comments",
        "http://example.com/news/./?id=7&utm_campaign=y",
    ]
    normalized = {normalize_url(f) for f in forms}
    assert normalized == {"http://example.com/news/?id=7"}
    assert normalize_url(normalized.pop()) == "http://example.com/news/?id=7"


def test_extract_links_resolves_base_entities_and_skips_non_http():
    html = (
        '<html><head><base href="http://example.com/sub/"></head><body>'
        '<a href="a.html">أ</a> <A class="x" HREF=/b?x=1&amp;y=2>ب</A> <a href=\'#top\'>ج</a>'
        '<a href="mailto:x@example.com">د</a> <a href="https://other.org/c">هـ</a> <a href="a.html">مكرر</a>'
        "</body></html>"
    )
    assert extract_links(html, "http://example.com/index.html") == [
        "http://example.com/sub/a.html",
        "http://example.com/b?x=1&y=2",
        "https://other.org/c",
    ]


def test_canonical_url():
    head = '<link rel="stylesheet" href="/s.css"><link href="/articles/a.html" rel="canonical">'
    assert canonical_url(html_page("", head=head), "http://example.com/amp/a.html") == (
        "http://example.com/articles/a.html"
    )
    assert canonical_url(html_page(""), "http://example.com/") is None


def test_retry_after_parsing_and_cap():
    assert parse_retry_after("3", cap=60) == 3.0
    assert parse_retry_after("600", cap=60) == 60.0
    assert parse_retry_after(None, cap=60) is None
    assert parse_retry_after("soon", cap=60) is None
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)
    assert 25 <= parse_retry_after(email.utils.format_datetime(later, usegmt=True), cap=60) <= 30
    past = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    assert parse_retry_after(email.utils.format_datetime(past, usegmt=True), cap=60) == 0.0


def test_sources_config_defaults_domains_and_validates_seeds():
    cfg = SourcesConfig.from_urls(["https://News.Example.org/ar/", "http://blog.example.net"])
    assert cfg.allowed_domains == ["blog.example.net", "news.example.org"]
    assert cfg.delay_s == 0.5 and cfg.obey_robots
    with pytest.raises(ValueError, match="not an http"):
        SourcesConfig(seeds=["ftp://example.org/"])
    with pytest.raises(ValueError, match="not a host name"):
        SourcesConfig(seeds=["https://a.org/"], allowed_domains=["a.org/path"])


def test_failure_reason():
    assert failure_reason("http_404") == "http_404"
    assert failure_reason("non_html: application/pdf") == "non_html"
    assert failure_reason("duplicate_content of http://x/") == "duplicate_content"


# --- politeness ----------------------------------------------------------------------------------------


def test_robots_disallowed_urls_are_never_requested():
    routes = {
        "/": page(links("/private/a.html", "/open.html", "/private/b.html")),
        "/open.html": page(links()),
        "/private/a.html": page(links()),
        "/private/b.html": page(links()),
    }
    robots = "User-agent: OtherBot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n"
    stats, sink, site, _ = run_site(routes, robots=robots)
    assert site.hits["/private/a.html"] == site.hits["/private/b.html"] == 0
    assert site.hits["/robots.txt"] == 1
    outcomes = by_path(sink, site)
    assert outcomes == {
        "/": "ok",
        "/open.html": "ok",
        "/private/a.html": "robots_disallowed",
        "/private/b.html": "robots_disallowed",
    }
    robots_failures = [f for f in sink.failures if f["stage"] == "robots"]
    assert len(robots_failures) == 2 and all(f["attempts"] == 0 for f in robots_failures)
    assert stats.failed_by_reason == Counter({"robots_disallowed": 2})


def test_robots_missing_allows_all_and_server_error_disallows_all():
    routes = {"/": page(links("/a.html")), "/a.html": page(links())}
    _, sink, site, _ = run_site(routes, robots=None)
    assert by_path(sink, site) == {"/": "ok", "/a.html": "ok"}

    _, sink, site, _ = run_site(routes, robots="oops", robots_status=503, retries=1)
    assert site.hits["/robots.txt"] == 2  # retried once, then the host counts as disallowed
    assert site.hits["/"] == 0
    assert by_path(sink, site) == {"/": "robots_disallowed"}


def test_obey_robots_off_fetches_disallowed_pages():
    routes = {"/": page(links("/private/a.html")), "/private/a.html": page(links())}
    _, _, site, _ = run_site(routes, robots="User-agent: *\nDisallow: /private/\n", obey_robots=False)
    assert site.hits["/robots.txt"] == 0 and site.hits["/private/a.html"] == 1


def test_per_host_concurrency_is_never_exceeded():
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(text=html_page(links(text=request.path)), content_type="text/html")

    routes = {"/": page(links(*[f"/p{i}.html" for i in range(24)]))}
    routes.update({f"/p{i}.html": slow for i in range(24)})
    stats, _, site, _ = run_site(routes, per_host_concurrency=3)
    assert stats.ok == 25
    assert site.max_in_flight == 3  # reached, never exceeded


def test_delay_between_request_starts_is_respected():
    routes = {"/": page(links(*[f"/p{i}.html" for i in range(4)]))}
    routes.update({f"/p{i}.html": page(links()) for i in range(4)})
    _, _, site, elapsed = run_site(routes, per_host_concurrency=4, delay_s=0.1)
    starts = sorted(site.all_starts)
    assert len(starts) == 5
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Seen from the server, so allow for scheduling jitter; without the delay all four links would
    # start together (gaps ~0).
    assert min(gaps) >= 0.06, gaps
    assert starts[-1] - starts[0] >= 0.37 and elapsed >= 0.4


def test_robots_crawl_delay_overrides_a_smaller_delay():
    routes = {"/": page(links("/a.html")), "/a.html": page(links())}
    _, _, site, _ = run_site(routes, robots="User-agent: *\nCrawl-delay: 1\n", delay_s=0.0)
    gap = site.starts["/a.html"][0] - site.starts["/"][0]
    assert gap >= 0.9


def test_host_pause_blocks_new_request_starts():
    async def main() -> float:
        host = _Host(concurrency=4, delay_s=0.0)
        started = time.monotonic()
        host.pause(0.15)
        await host.turn()
        return time.monotonic() - started

    assert asyncio.run(main()) >= 0.14


def test_retry_after_is_honoured_then_page_stored():
    calls = Counter()

    async def busy(request: web.Request) -> web.Response:
        calls["busy"] += 1
        if calls["busy"] == 1:
            return web.Response(status=503, text="busy", headers={"Retry-After": "1"})
        return web.Response(text=html_page(links()), content_type="text/html")

    routes = {"/": page(links("/busy.html")), "/busy.html": busy}
    _, sink, site, _ = run_site(routes, retries=2, backoff_s=0.0)
    first, second = site.starts["/busy.html"]
    assert second - first >= 0.9  # waited the Retry-After, not the (zero) backoff
    record = next(p for p in sink.pages if p["url"].endswith("/busy.html"))
    assert record["attempts"] == 2


def test_retry_after_is_capped():
    async def limited(request: web.Request) -> web.Response:
        return web.Response(status=429, text="slow down", headers={"Retry-After": "3600"})

    routes = {"/": page(links("/limited.html")), "/limited.html": limited}
    _, sink, site, _ = run_site(routes, retries=1, max_retry_after_s=0.2)
    first, second = site.starts["/limited.html"]
    assert 0.15 <= second - first < 1.0
    failure = next(f for f in sink.failures if f["url"].endswith("/limited.html"))
    assert failure["error"] == "http_429" and failure["attempts"] == 2 and failure["status_code"] == 429


def test_server_errors_are_retried_then_recorded_with_attempts():
    calls = Counter()

    async def flaky(request: web.Request) -> web.Response:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            return web.Response(status=502, text="bad gateway")
        return web.Response(text=html_page(links(text="صفحة بعد خطأ مؤقت.")), content_type="text/html")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    routes = {"/": page(links("/flaky.html", "/broken.html", "/gone.html")), "/flaky.html": flaky}
    routes["/broken.html"] = broken
    stats, sink, site, _ = run_site(routes, retries=2)
    assert by_path(sink, site) == {
        "/": "ok",
        "/flaky.html": "ok",
        "/broken.html": "http_500",
        "/gone.html": "http_404",
    }
    assert site.hits["/broken.html"] == 3  # 1 + retries
    assert site.hits["/gone.html"] == 1  # a 404 is not retried
    broken_rec = next(f for f in sink.failures if f["url"].endswith("/broken.html"))
    assert broken_rec["attempts"] == 3 and broken_rec["stage"] == "fetch"
    assert next(p for p in sink.pages if p["url"].endswith("/flaky.html"))["attempts"] == 2
    assert stats.attempts == 1 + 2 + 3 + 1


def test_timeouts_are_retried_then_recorded():
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    routes = {"/": page(links("/hang.html")), "/hang.html": hang}
    _, sink, site, elapsed = run_site(routes, request_timeout_s=0.2, retries=1)
    failure = next(f for f in sink.failures if f["url"].endswith("/hang.html"))
    assert failure["error"] == "timeout" and failure["attempts"] == 2
    assert site.hits["/hang.html"] == 2
    assert elapsed < 2.0


def test_pages_over_max_bytes_are_abandoned():
    big = "ب" * 20_000  # 40 KB in UTF-8

    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
        resp.enable_chunked_encoding()  # no Content-Length: the crawler must count while streaming
        await resp.prepare(request)
        for _ in range(40):
            await resp.write(("<p>" + "ت" * 1000 + "</p>").encode())
        await resp.write_eof()
        return resp

    routes = {"/": page(links("/big.html", "/stream.html")), "/big.html": page(big), "/stream.html": streamed}
    _, sink, site, _ = run_site(routes, max_bytes=10_000)
    outcomes = by_path(sink, site)
    assert outcomes["/big.html"] == outcomes["/stream.html"] == "too_large"
    assert all(f["stage"] == "fetch" for f in sink.failures)


def test_non_html_is_skipped_without_downloading_the_body():
    async def pdf(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/pdf"})
        resp.content_length = 10_000_000
        await resp.prepare(request)
        await resp.write(b"%PDF-1.4\n")
        await asyncio.sleep(3)  # the rest would take seconds: a crawler waiting for it would be slow
        await resp.write(b"0" * (10_000_000 - 9))
        return resp

    routes = {"/": page(links("/report.pdf")), "/report.pdf": pdf}
    _, sink, _, elapsed = run_site(routes)
    failure = next(f for f in sink.failures if f["url"].endswith("/report.pdf"))
    assert failure["error"] == "non_html: application/pdf" and failure["attempts"] == 1
    assert elapsed < 1.5


def test_only_allowed_domains_within_max_depth_are_followed_and_max_pages_stops():
    chain = {f"/d{i}.html": page(links(f"/d{i + 1}.html")) for i in range(6)}
    routes = {"/": page(links("/d0.html", "http://localhost:1/elsewhere.html")), **chain}
    _, sink, site, _ = run_site(routes, max_depth=3)
    assert set(by_path(sink, site)) == {"/", "/d0.html", "/d1.html", "/d2.html"}
    depths = {p["url"].removeprefix(site.base): p["depth"] for p in sink.pages}
    assert depths == {"/": 0, "/d0.html": 1, "/d1.html": 2, "/d2.html": 3}
    # outlinks keep only in-domain links
    assert all(link.startswith(site.base) for p in sink.pages for link in p["outlinks"])

    wide = {f"/w{i}.html": page(links()) for i in range(10)}
    routes = {"/": page(links(*wide)), **wide}
    stats, sink, _, _ = run_site(routes, max_pages=4)
    assert len(sink.pages) + len(sink.failures) == 4 and stats.ok == 4


# --- redirects, duplicates, accounting ------------------------------------------------------------------


def redirect(location: Callable[[web.Request], str]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location=location(request))

    return handler


def test_redirects_are_followed_recorded_and_checked():
    routes = {
        "/": page(links("/old.html", "/again.html", "/known.html", "/away.html")),
        "/old.html": redirect(lambda r: "/new.html"),
        "/new.html": page(links(text="المقال في عنوانه الجديد.")),
        "/again.html": redirect(lambda r: "/known.html"),
        "/known.html": page(links(text="صفحة معروفة مسبقا.")),
        # the same server under another host name: not an allowed domain
        "/away.html": redirect(lambda r: f"http://localhost:{r.url.port}/new.html"),
    }
    _, sink, site, _ = run_site(routes)
    outcomes = by_path(sink, site)
    assert outcomes["/old.html"] == "ok"
    old = next(p for p in sink.pages if p["url"].endswith("/old.html"))
    assert old["final_url"] == site.url("/new.html")
    assert "/new.html" not in outcomes  # claimed by the redirect: one record, keyed by final_url
    assert site.hits["/new.html"] == 1
    assert outcomes["/again.html"] == "duplicate_content"  # its target is crawled under its own URL
    assert site.hits["/known.html"] == 1
    assert outcomes["/away.html"] == "offsite_redirect"


def test_duplicate_content_and_canonical_alternates_end_in_dedup():
    same = links(text="هذا نص مكرر حرفيا في صفحتين مختلفتين.")
    canonical_head = '<link rel="canonical" href="/story.html">'

    async def amp(request: web.Request) -> web.Response:
        body = html_page("<article><p>القصة نفسها بقالب أخف.</p></article>", head=canonical_head)
        return web.Response(text=body, content_type="text/html")

    routes = {
        "/": page(links("/one.html", "/two.html", "/amp/story.html")),
        "/one.html": page(same, unique=False),
        "/two.html": page(same, unique=False),
        "/amp/story.html": amp,
        "/story.html": page(links(text="القصة الأصلية بقالبها الكامل.")),
    }
    _, sink, site, _ = run_site(routes, per_host_concurrency=1)
    outcomes = by_path(sink, site)
    assert sorted([outcomes["/one.html"], outcomes["/two.html"]]) == ["duplicate_content", "ok"]
    dup = next(f for f in sink.failures if f["url"].endswith(("/one.html", "/two.html")))
    first = next(p for p in sink.pages if p["url"].endswith(("/one.html", "/two.html")))
    assert dup["stage"] == "dedup" and dup["error"] == f"duplicate_content of {first['url']}"
    assert outcomes["/amp/story.html"] == "duplicate_content"
    assert outcomes["/story.html"] == "ok"  # queued through the canonical link


def test_every_url_is_accounted_for_exactly_once():
    async def boom(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG....", content_type="image/png")

    targets = {f"/ok{i}.html": page(links("/", "/ok0.html", f"/ok{(i + 1) % 5}.html")) for i in range(5)}
    routes = {
        "/": page(
            links(*targets, "/err.html", "/img.png", "/missing.html", "/private/x.html", "/ok1.html#frag")
        ),
        **targets,
        "/err.html": boom,
        "/img.png": image,
        "/private/x.html": page(links()),
    }
    stats, sink, site, _ = run_site(routes, robots="User-agent: *\nDisallow: /private/\n")
    outcomes = by_path(sink, site)  # raises if a URL has two records
    expected = {"/": "ok", **dict.fromkeys(targets, "ok")}
    expected.update(
        {
            "/err.html": "http_500",
            "/img.png": "non_html",
            "/missing.html": "http_404",
            "/private/x.html": "robots_disallowed",
        }
    )
    assert outcomes == expected
    assert stats.ok == 6 and stats.failed == 4
    assert all(site.hits[p] <= 1 for p in targets)  # links seen many times, fetched once


def test_progress_callback_reports_the_final_stats():
    seen: list[str] = []
    routes = {"/": page(links("/a.html")), "/a.html": page(links())}

    async def main() -> CrawlStats:
        async with Site(routes) as site:
            return await crawl(sources(site), sink=MemorySink(), progress=lambda s: seen.append(s.line()))

    stats = asyncio.run(main())
    assert seen and seen[-1] == stats.line()
    assert seen[-1].startswith("ok 2 | failed 0 | queued 0 |")


# --- Parquet sink and resume ------------------------------------------------------------------------------


def read_records(directory: Path, kind: str) -> list[dict]:
    rows = []
    for part in sorted((directory / kind).glob("part-*.parquet")):
        rows += pq.read_table(part).to_pylist()
    return rows


def test_parquet_sink_writes_atomic_parts_and_load_progress_builds_the_frontier(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    sink = ParquetSink(tmp_path, flush_rows=2)
    base = {"final_url": None, "status_code": 200, "content_type": "text/html", "encoding": "utf-8"}
    base |= {"html": "<p>س</p>", "fetched_at": now, "attempts": 1, "elapsed_s": 0.1}
    sink.write_page(
        {
            **base,
            "url": "http://e.org/",
            "depth": 0,
            "outlinks": ["http://e.org/a", "http://e.org/b"],
            "content_hash": "h0",
        }
    )
    sink.write_page(
        {
            **base,
            "url": "http://e.org/a",
            "depth": 1,
            "outlinks": ["http://e.org/c", "http://e.org/", "http://e.org/go/1", "http://e.org/d"],
            "content_hash": "h1",
        }
    )
    assert sink.parts_written == 1 and len(list((tmp_path / "raw").glob("part-*.parquet"))) == 1
    sink.write_failure(
        {
            "url": "http://e.org/b",
            "stage": "fetch",
            "error": "http_404",
            "attempts": 1,
            "status_code": 404,
            "fetched_at": now,
        }
    )
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "failures").exists()  # still buffered
    # A redirect stored under the URL that led to it: its target is done too (the section page that
    # links the target directly must not fetch it again on resume).
    sink.write_page(
        {
            **base,
            "url": "http://e.org/go/1",
            "final_url": "http://e.org/d",
            "depth": 1,
            "outlinks": [],
            "content_hash": "h2",
        }
    )
    sink.close()
    assert len(read_records(tmp_path, "failures")) == 1
    done, frontier = load_progress(tmp_path)
    assert done == {
        "http://e.org/",
        "http://e.org/a",
        "http://e.org/b",
        "http://e.org/go/1",
        "http://e.org/d",
    }
    assert frontier == [("http://e.org/c", 2)]
    assert load_content_hashes(tmp_path) == {
        "h0": "http://e.org/",
        "h1": "http://e.org/a",
        "h2": "http://e.org/go/1",
    }
    assert load_progress(tmp_path / "nothing-here") == (set(), [])


def resume_routes() -> dict[str, Handler]:
    hubs = [f"/hub{h}.html" for h in range(4)]
    routes: dict[str, Handler] = {"/": page(links(*hubs))}
    for h, hub in enumerate(hubs):
        articles = [f"/a{h}-{k}.html" for k in range(5)]
        routes[hub] = page(links(*articles, f"/gone{h}.html"))
        for k, art in enumerate(articles):
            routes[art] = page(links(hub, text=f"مقال رقم {k} في القسم {h}، نص قصير مختلف."))
    twin = links(text="مقالان بنص واحد في قسمين مختلفين.")
    routes["/a3-4.html"] = page(twin, unique=False)  # same content as ...
    routes["/a0-0.html"] = page(twin, unique=False)  # ... this one
    return routes


class CrashingSink(ParquetSink):
    """Cancels the crawl after ``crash_after`` records; from then on nothing more reaches the disk."""

    def __init__(self, directory: Path, crash_after: int):
        super().__init__(directory, flush_rows=3)
        self.crash_after = crash_after
        self.count = 0
        self.crashed = False
        self.task: asyncio.Task | None = None

    def _record(self) -> None:
        self.count += 1
        if self.count == self.crash_after:
            self.crashed = True
            assert self.task is not None
            self.task.cancel()

    def write_page(self, record: dict) -> None:
        if not self.crashed:
            super().write_page(record)
            self._record()

    def write_failure(self, record: dict) -> None:
        if not self.crashed:
            super().write_failure(record)
            self._record()

    def flush(self) -> None:
        if not self.crashed:
            super().flush()


@pytest.mark.slow
def test_resume_after_a_crash_fetches_only_what_is_missing(tmp_path):
    routes = resume_routes()

    async def main() -> None:
        async with Site(routes) as site:
            reference = MemorySink()
            await crawl(sources(site, per_host_concurrency=2), sink=reference)
            ref_outcomes = Counter(reference.outcome_by_url().values())
            ref_urls = set(reference.outcome_by_url())
            assert len(ref_urls) == 1 + 4 + 20 + 4

            crashing = CrashingSink(tmp_path, crash_after=11)
            crashing.task = asyncio.create_task(crawl(sources(site, per_host_concurrency=2), sink=crashing))
            with pytest.raises(asyncio.CancelledError):
                await crashing.task
            done, frontier = load_progress(tmp_path)
            assert 0 < len(done) < 11  # the last buffer was lost with the "process"
            assert frontier

            site.hits.clear()
            with ParquetSink(tmp_path, flush_rows=3) as sink:
                await crawl(
                    sources(site, per_host_concurrency=2),
                    sink=sink,
                    done_urls=done,
                    frontier=frontier,
                    content_hashes=load_content_hashes(tmp_path),
                )
            refetched = {site.url(p) for p in site.hits if p != "/robots.txt"}
            assert not refetched & done

            pages, failures = read_records(tmp_path, "raw"), read_records(tmp_path, "failures")
            urls = [r["url"] for r in pages + failures]
            assert len(urls) == len(set(urls))  # nothing recorded twice across the two runs
            assert set(urls) == ref_urls
            outcomes = Counter(["ok"] * len(pages) + [failure_reason(f["error"]) for f in failures])
            assert outcomes == ref_outcomes  # incl. the duplicate, caught across runs

    asyncio.run(main())


def test_transient_failures_are_fetched_again_by_the_next_run_and_permanent_ones_are_not(tmp_path):
    """A site that was down (503s, timeouts) is crawled once it is back; its 404s are never asked again."""
    from seqlab.data.pipeline import read_failures

    state = {"down": True}

    def while_down(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if state["down"]:
                return web.Response(status=503, text="maintenance")
            return await handler(request)

        return wrapped

    routes = {
        "/": while_down(page(links("/a.html", "/gone.html"))),
        "/a.html": while_down(page(links(text="مقال يعود بعد انقطاع الموقع."))),
    }

    async def main() -> None:
        async with Site(routes) as site:
            for run in range(3):  # down, back, and once more with nothing left to do
                state["down"] = run == 0
                site.hits.clear()
                done, frontier = load_progress(tmp_path)
                with ParquetSink(tmp_path, flush_rows=1) as sink:
                    await crawl(
                        sources(site, retries=1),
                        sink=sink,
                        done_urls=done,
                        frontier=frontier,
                        content_hashes=load_content_hashes(tmp_path),
                    )
                if run == 0:
                    assert site.hits["/"] == 2 and not (tmp_path / "raw").exists()
                    assert site.url("/") not in load_progress(tmp_path)[0]
                if run == 1:
                    assert site.hits["/"] == 1 and site.hits["/a.html"] == 1 and site.hits["/gone.html"] == 1
                if run == 2:
                    assert not any(p != "/robots.txt" for p in site.hits), site.hits
            failures = read_failures(tmp_path)
            assert failures["url"].tolist() == [site.url("/gone.html")]
            assert sorted(r["url"] for r in read_records(tmp_path, "raw")) == [
                site.url("/"),
                site.url("/a.html"),
            ]

    asyncio.run(main())


@pytest.mark.parametrize(
    "error, transient",
    [
        ("timeout", True),
        ("connection_error: ClientConnectorError: refused", True),
        ("http_503", True),
        ("http_429", True),
        ("http_408", True),
        ("http_404", False),
        ("http_403", False),
        ("robots_disallowed", False),
        ("non_html: image/png", False),
        ("duplicate_content of http://x/", False),
        ("client_error: InvalidURL: x", False),
    ],
)
def test_is_transient(error, transient):
    from seqlab.data.scrape import is_transient

    assert is_transient(error) is transient
