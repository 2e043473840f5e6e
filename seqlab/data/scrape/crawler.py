"""The crawl loop: :func:`crawl` walks the frontier with async workers and records each URL's one outcome.

The seeds are walked breadth-first (a priority queue by depth, so no barrier between levels) inside the
allowed domains, and each URL's single outcome goes to a sink: a page record (``write_page``) or a failure
record (``write_failure``). Every page URL taken from the frontier ends in exactly one of the two.

Discovery as news crawlers start: the sitemaps and feeds of the config, and the ``Sitemap:`` lines of each
seed host's robots.txt (``robots_sitemaps``), are fetched before any page (they sort ahead of depth 0) by
the same fetcher, robots rules and politeness; a sitemap index's sitemaps are fetched in turn (at most
:data:`MAX_LIST_NESTING` levels deep), and every page URL they list joins the frontier at depth 0, as a
seed. They do not count against ``max_pages``; one that fails is a failure record of stage ``discover``.

Duplicates end as failures of stage ``dedup`` ("duplicate_content of <url>"): a body whose decoded text
hashes like an earlier page's; a page whose ``<link rel="canonical">`` names another allowed URL (its
links are still followed, and the canonical URL is queued); a redirect to a URL the crawl already has
(not requested again). A redirect to a new URL claims it: the record has ``url`` = the redirecting URL,
``final_url`` = the target, and the target gets no record of its own, so downstream code should key a
document by ``final_url``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

import aiohttp

from seqlab.data.config import SourcesConfig
from seqlab.data.decode import decode_html
from seqlab.data.scrape.discover import UrlListError, parse_url_list
from seqlab.data.scrape.failures import failure_reason
from seqlab.data.scrape.fetch import Fetcher, Outcome, new_session
from seqlab.data.scrape.links import canonical_url, extract_links, in_domains, url_origin
from seqlab.data.scrape.politeness import Hosts
from seqlab.data.scrape.robots import Robots
from seqlab.data.scrape.sink import Sink
from seqlab.data.urls import normalize_url

__all__ = ["CrawlStats", "crawl"]

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0  # how often the progress callback is called
MAX_LIST_NESTING = 2  # sitemap index -> sitemap -> (one more level: some sites nest indexes) -> stop
_LIST_PRIORITY = -1  # sitemaps and feeds sort ahead of the seeds (depth 0)
_ROBOTS_LINES = -1  # the nesting level that stands for "read this robots.txt's Sitemap: lines"


@dataclasses.dataclass
class CrawlStats:
    """Counters of a crawl; ``progress`` callbacks receive the live object."""

    ok: int = 0
    failed_by_reason: Counter[str] = dataclasses.field(default_factory=Counter)
    attempts: int = 0  # HTTP attempts for pages (redirect hops of one attempt count once); no robots.txt
    queued: int = 0
    elapsed_s: float = 0.0
    discovered: int = 0  # page URLs listed by sitemaps and feeds (new to the crawl or not)

    @property
    def failed(self) -> int:
        return sum(self.failed_by_reason.values())

    @property
    def pages_per_s(self) -> float:
        """Pages stored per second of crawl."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def __str__(self) -> str:
        return self.line()

    def line(self) -> str:
        """One-line status for a terminal: ``ok 120 | failed 4 (http_404 3, timeout 1) | queued 40 | 22.5 pages/s``."""
        reasons = ", ".join(f"{k} {v}" for k, v in self.failed_by_reason.most_common(4))
        failed = f"failed {self.failed}" + (f" ({reasons})" if reasons else "")
        found = f" | discovered {self.discovered}" if self.discovered else ""
        return f"ok {self.ok} | {failed} | queued {self.queued}{found} | {self.pages_per_s:.1f} pages/s"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class _Crawler:
    def __init__(
        self,
        sources: SourcesConfig,
        sink: Sink,
        session: aiohttp.ClientSession,
        done_urls: set[str],
        content_hashes: dict[str, str],
    ):
        self.cfg = sources
        self.sink = sink
        self.domains = sources.domains
        self.hosts = Hosts(sources.per_host_concurrency, sources.delay_s)
        self.fetcher = Fetcher(sources, session, self.hosts)
        self.robots = Robots(sources.user_agent, sources.obey_robots, self.hosts, self.fetcher)
        self.origin_allowed: dict[str, bool] = {}
        self.hashes = dict(content_hashes)
        self.seen = set(done_urls)
        # max_pages counts URLs processed, resumed ones included (only those of this crawl's domains).
        self.taken = sum(1 for u in done_urls if in_domains(u, self.domains))
        self.queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self.lists: dict[str, int] = {}  # sitemap/feed URL (or robots.txt for its Sitemap: lines) -> nesting
        self.seq = 0
        self.stats = CrawlStats()

    # -- frontier ---------------------------------------------------------------------------------------
    def in_domain(self, url: str) -> bool:
        """Whether a normalized URL's host is allowed (cached per origin)."""
        origin = url_origin(url)
        allowed = self.origin_allowed.get(origin)
        if allowed is None:
            allowed = self.origin_allowed[origin] = in_domains(origin, self.domains)
        return allowed

    def enqueue(self, url: str, depth: int) -> None:
        if url in self.seen or depth > self.cfg.max_depth or not self.in_domain(url):
            return
        self.seen.add(url)
        self.seq += 1
        self.queue.put_nowait((depth, self.seq, url))

    def enqueue_list(self, url: str | None, level: int) -> None:
        """Queue a sitemap or feed (``level`` = how many indexes led to it) ahead of every page."""
        if url is None or url in self.seen or level > MAX_LIST_NESTING:
            return
        if not self.in_domain(url):
            log.info("not reading %s: outside the allowed domains %s", url, self.domains)
            return
        self.seen.add(url)
        self.lists[url] = level
        self.seq += 1
        self.queue.put_nowait((_LIST_PRIORITY, self.seq, url))

    async def worker(self) -> None:
        while True:
            depth, _, url = await self.queue.get()
            try:
                if url in self.lists:
                    await self.process_list(url, self.lists[url])
                elif self.taken < self.cfg.max_pages:
                    self.taken += 1
                    await self.process(url, depth)
            except Exception as exc:  # a crawler bug must not lose the URL
                log.exception("crawling %s failed unexpectedly", url)
                self.fail(url, depth, "internal", f"internal_error: {type(exc).__name__}: {exc}", 0, None)
            finally:
                self.queue.task_done()

    # -- records ----------------------------------------------------------------------------------------
    def fail(self, url: str, depth: int, stage: str, error: str, attempts: int, status: int | None) -> None:
        self.stats.failed_by_reason[failure_reason(error)] += 1
        log.debug("failed %s [%s] %s", url, stage, error)
        self.sink.write_failure(
            {
                "url": url,
                "stage": stage,
                "error": error,
                "attempts": attempts,
                "status_code": status,
                "fetched_at": _now(),
                "depth": depth,
            }
        )

    async def process(self, url: str, depth: int) -> None:
        if not await self.robots.allowed(url):
            self.fail(url, depth, "robots", "robots_disallowed", 0, None)
            return
        started = time.monotonic()
        out = await self.fetch_page(url)
        self.stats.attempts += out.attempts
        if out.error is not None:
            self.fail(url, depth, out.stage, out.error, out.attempts, out.status)
            return
        text, encoding = decode_html(out.body or b"", out.content_type)
        outlinks = [link for link in extract_links(text, out.final_url) if self.in_domain(link)]
        canonical = canonical_url(text, out.final_url)
        if (
            canonical is not None
            and canonical not in (url, out.final_url)
            and self.in_domain(canonical)
            and await self.robots.allowed(canonical)
        ):
            # An alternate edition (AMP, print, tracking URL): store the canonical one instead, but keep
            # discovering links through it.
            self.fail(
                url,
                depth,
                "dedup",
                f"duplicate_content of {canonical} (rel=canonical)",
                out.attempts,
                out.status,
            )
            for link in [canonical, *outlinks]:
                self.enqueue(link, depth if link == canonical else depth + 1)
            return
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
        first = self.hashes.setdefault(digest, url)
        if first != url:
            self.fail(url, depth, "dedup", f"duplicate_content of {first}", out.attempts, out.status)
            return
        self.sink.write_page(
            {
                "url": url,
                "final_url": out.final_url,
                "depth": depth,
                "status_code": out.status,
                "content_type": out.content_type,
                "encoding": encoding,
                "html": text,
                "outlinks": outlinks,
                "fetched_at": _now(),
                "attempts": out.attempts,
                "elapsed_s": time.monotonic() - started,
                "content_hash": digest,
            }
        )
        self.stats.ok += 1
        for link in outlinks:
            self.enqueue(link, depth + 1)

    async def process_list(self, url: str, level: int) -> None:
        """Fetch a sitemap or feed and queue what it lists (see the module docstring)."""
        if level == _ROBOTS_LINES:
            for sitemap in await self.robots.sitemaps(url):
                self.enqueue_list(normalize_url(sitemap), 0)
            return
        if not await self.robots.allowed(url):
            self.fail(url, 0, "discover", "robots_disallowed", 0, None)
            return
        out = await self.fetcher.fetch(url, kind="list")
        if out.error is not None:
            self.fail(url, 0, "discover", out.error, out.attempts, out.status)
            return
        try:
            listed = parse_url_list(out.body or b"", out.final_url)
        except UrlListError as exc:
            self.fail(url, 0, "discover", f"not_a_url_list: {exc}", out.attempts, out.status)
            return
        log.info(
            "%s (%s) lists %d pages, %d sitemaps", url, listed.kind, len(listed.pages), len(listed.sitemaps)
        )
        self.stats.discovered += len(listed.pages)
        for sitemap in listed.sitemaps:
            self.enqueue_list(sitemap, level + 1)
        for page in listed.pages:
            self.enqueue(page, 0)

    # -- fetching ---------------------------------------------------------------------------------------
    async def fetch_page(self, url: str) -> Outcome:
        """Fetch a page with retries, following only redirects to allowed targets the crawl does not have."""
        claimed: set[str] = set()  # redirect targets this fetch took over (across its attempts)

        async def check_redirect(target: str, status: int | None) -> Outcome | None:
            if not self.in_domain(target):
                return Outcome(target, status=status, error=f"offsite_redirect: {target}")
            if not await self.robots.allowed(target):
                return Outcome(target, status=status, stage="robots", error="robots_disallowed")
            if target != url and target not in claimed:
                if target in self.seen:  # queued or done under its own URL: record it once, there
                    return Outcome(
                        target, status=status, stage="dedup", error=f"duplicate_content of {target}"
                    )
                self.seen.add(target)
                claimed.add(target)
            return None

        return await self.fetcher.fetch(url, check_redirect=check_redirect)


async def crawl(
    sources: SourcesConfig,
    *,
    sink: Sink,
    done_urls: set[str] | None = None,
    frontier: Iterable[tuple[str, int]] | None = None,
    session: aiohttp.ClientSession | None = None,
    progress: Callable[[CrawlStats], None] | None = None,
    content_hashes: dict[str, str] | None = None,
) -> CrawlStats:
    """Crawl ``sources`` politely, writing one record per URL to ``sink``.

    Args:
        sources: seeds, domains, limits and politeness settings.
        sink: receives ``write_page``/``write_failure`` records; flushed at the end (also on cancel).
        done_urls: URLs already recorded (resume): never fetched again, counted against ``max_pages``.
        frontier: ``(url, depth)`` pairs to crawl besides the seeds (resume; see :func:`load_progress`).
        session: an aiohttp session to use (e.g. with a test resolver); one is made and closed if None.
        progress: called with the live :class:`CrawlStats` about every second and at the end.
        content_hashes: ``hash -> url`` of pages already stored, so resumed runs still drop duplicates.

    Returns:
        The final :class:`CrawlStats`.
    """
    own_session = session is None
    session = session or new_session(sources)
    crawler = _Crawler(sources, sink, session, set(done_urls or ()), content_hashes or {})
    start = [(normalize_url(seed), 0) for seed in sources.seeds] + list(frontier or ())
    for url, depth in start:
        if url is not None:
            crawler.enqueue(url, depth)
    for url in [*sources.sitemaps, *sources.feeds]:
        crawler.enqueue_list(normalize_url(url), 0)
    if sources.robots_sitemaps and sources.obey_robots:  # obey_robots off: robots.txt is never asked
        for origin in sorted({url_origin(url) for url, _ in start[: len(sources.seeds)] if url is not None}):
            crawler.enqueue_list(origin + "/robots.txt", _ROBOTS_LINES)

    started = time.monotonic()
    # Enough workers to fill every origin's slots (a worker waiting on a busy origin holds no request).
    n_origins = len({url_origin(url) for url, _ in start if url is not None})
    n_workers = min(sources.per_host_concurrency * max(n_origins, len(crawler.domains), 1), 1024)
    workers = [asyncio.create_task(crawler.worker()) for _ in range(n_workers)]

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            crawler.stats.elapsed_s = time.monotonic() - started
            crawler.stats.queued = crawler.queue.qsize()
            progress(crawler.stats)  # type: ignore[misc]

    reporter = asyncio.create_task(report()) if progress else None
    try:
        await crawler.queue.join()
    finally:
        for task in [*workers, *([reporter] if reporter else [])]:
            task.cancel()
        await asyncio.gather(*workers, *([reporter] if reporter else []), return_exceptions=True)
        crawler.robots.cancel_pending()
        if own_session:
            await session.close()
        sink.flush()
    stats = crawler.stats
    stats.elapsed_s = time.monotonic() - started
    stats.queued = crawler.queue.qsize()
    if progress:
        progress(stats)
    log.info("crawl done: %s", stats.line())
    return stats
