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

Focus (``sources.focus``, see :mod:`seqlab.data.scrape.focus`): the frontier is ordered by a scorer's rank
of each link instead of its depth; seeds and listed pages still come first, and depth, domains, robots,
politeness, retries and dedup are untouched. A link found again with a better rank moves up (the old
queue entry is skipped as stale). Each page record keeps ``focus_score`` and the rank of each outlink it
scored (``outlink_ranks``), so :func:`~seqlab.data.scrape.load_ranks` lets a resumed crawl take the
frontier in the order the interrupted one would have. Without focus none of this runs.

``max_pages`` is a budget: once that many URLs are processed the workers stop taking new ones and the
crawl ends; the links left are counted (``CrawlStats.unvisited``) and stay in the stored outlinks, so a
re-run with a larger budget continues from them.
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
from seqlab.data.scrape.focus import UNSCORED_RANK, FocusScorer, rank_of
from seqlab.data.scrape.links import canonical_url, extract_links, in_domains, link_contexts, url_origin
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
    unvisited: int = 0  # queued URLs left when max_pages was reached (resumable from the stored outlinks)
    threshold: float | None = None  # focus only: the score a stored page needs to count as relevant
    relevant: int = 0  # focus only: stored pages scored >= threshold

    @property
    def harvest_rate(self) -> float:
        """Focus only: the share of stored pages the scorer rates >= ``threshold``."""
        return self.relevant / self.ok if self.ok else 0.0

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
        harvest = (
            f" | harvest {self.harvest_rate:.2f} (>= {self.threshold:g})"
            if self.threshold is not None
            else ""
        )
        budget = f" | budget reached, {self.unvisited} left" if self.unvisited else ""
        return (
            f"ok {self.ok} | {failed} | queued {self.queued}{found}{harvest}{budget} | "
            f"{self.pages_per_s:.1f} pages/s"
        )


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
        focus: FocusScorer | None = None,
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
        # (rank, seq, url, depth): breadth-first the rank is the depth; with focus a scored link's rank is
        # in [1, 11] and its seq 0, so equal ranks are taken in URL order (a resumed crawl can repeat it).
        self.queue: asyncio.PriorityQueue[tuple[float, int, str, int]] = asyncio.PriorityQueue()
        self.lists: dict[str, int] = {}  # sitemap/feed URL (or robots.txt for its Sitemap: lines) -> nesting
        self.seq = 0
        self.stats = CrawlStats(threshold=focus.threshold if focus else None)
        self.focus = focus
        self.ranks: dict[str, tuple[float, int]] = {}  # focus: queued scored URL -> (best rank, its depth)
        self.stale = 0  # focus: queue entries superseded by a better rank

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
        self.queue.put_nowait((depth, self.seq, url, depth))

    def enqueue_ranked(self, url: str, depth: int, rank: float) -> None:
        """Focus: queue ``url`` at ``rank``, or move it up if it waits with a worse one."""
        if depth > self.cfg.max_depth or not self.in_domain(url):
            return
        if url in self.seen:
            queued = self.ranks.get(url)
            if queued is None or rank >= queued[0]:
                return  # taken already, or waiting with a rank at least as good
            depth = min(depth, queued[1])
            self.stale += 1
        self.seen.add(url)
        self.ranks[url] = (rank, depth)
        self.queue.put_nowait((rank, 0, url, depth))

    def queued(self) -> int:
        """URLs waiting in the frontier (stale entries of moved-up links not counted)."""
        return self.queue.qsize() - self.stale

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
        self.queue.put_nowait((_LIST_PRIORITY, self.seq, url, 0))

    async def worker(self) -> None:
        while True:
            rank, seq, url, depth = await self.queue.get()
            try:
                if seq == 0 and self.ranks.get(url, (None,))[0] != rank:
                    self.stale -= 1  # moved up since: its better entry was (or will be) taken
                elif url in self.lists:
                    await self.process_list(url, self.lists[url])
                elif self.taken < self.cfg.max_pages:
                    self.ranks.pop(url, None)
                    self.taken += 1
                    await self.process(url, depth)
                else:
                    self.stats.unvisited += 1
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
            if self.focus is None:
                for link in [canonical, *outlinks]:
                    self.enqueue(link, depth if link == canonical else depth + 1)
                return
            score, ranks = await self.rank_links(text, out.final_url, outlinks)
            self.enqueue_ranked(canonical, depth, rank_of(score))  # the same story as this page
            for link, rank in zip(outlinks, ranks, strict=True):
                if rank is not None:
                    self.enqueue_ranked(link, depth + 1, rank)
            return
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
        first = self.hashes.setdefault(digest, url)
        if first != url:
            self.fail(url, depth, "dedup", f"duplicate_content of {first}", out.attempts, out.status)
            return
        focus_score, ranks = None, None
        if self.focus is not None:
            focus_score, ranks = await self.rank_links(text, out.final_url, outlinks)
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
                "focus_score": focus_score,
                "outlink_ranks": ranks,
            }
        )
        self.stats.ok += 1
        if ranks is None:
            for link in outlinks:
                self.enqueue(link, depth + 1)
            return
        self.stats.relevant += focus_score >= self.focus.threshold  # type: ignore[union-attr,operator]
        for link, rank in zip(outlinks, ranks, strict=True):
            if rank is not None:
                self.enqueue_ranked(link, depth + 1, rank)

    async def rank_links(
        self, html: str, page_url: str, outlinks: list[str]
    ) -> tuple[float, list[float | None]]:
        """Focus: the page's score and a rank for each outlink still to crawl (None for the others)."""
        todo = [i for i, link in enumerate(outlinks) if link not in self.seen or link in self.ranks]
        contexts = link_contexts(html, page_url, {outlinks[i] for i in todo}) if todo else {}
        score, ranks = await self.focus.rate(html, [contexts.get(outlinks[i], "") for i in todo])  # type: ignore[union-attr]
        out: list[float | None] = [None] * len(outlinks)
        for i, rank in zip(todo, ranks, strict=True):
            out[i] = rank
        return score, out

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
    ranks: dict[str, float] | None = None,
    focus: FocusScorer | None = None,
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
        ranks: ``url -> rank`` of frontier links (resume with focus; see :func:`load_ranks`); a frontier
            link without one waits at the middle rank.
        focus: the scorer that orders the frontier; None loads ``sources.focus`` when set (else the
            crawl is breadth-first).

    Returns:
        The final :class:`CrawlStats`.
    """
    own_session = session is None
    session = session or new_session(sources)
    if focus is None and sources.focus is not None:
        from seqlab.data.scrape.focus import load_focus

        focus = load_focus(sources.focus)
    crawler = _Crawler(sources, sink, session, set(done_urls or ()), content_hashes or {}, focus)
    start = [(normalize_url(seed), 0) for seed in sources.seeds] + list(frontier or ())
    for url, depth in start:
        if url is None:
            continue
        if focus is None or depth == 0:
            crawler.enqueue(url, depth)
        elif url not in crawler.seen:
            crawler.enqueue_ranked(url, depth, (ranks or {}).get(url, UNSCORED_RANK))
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
            crawler.stats.queued = crawler.queued()
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
    stats.queued = crawler.queued()
    if progress:
        progress(stats)
    log.info("crawl done: %s", stats.line())
    return stats
