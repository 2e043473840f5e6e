"""A polite async crawler (aiohttp) that writes raw page records; extraction happens downstream.

``crawl`` walks the seeds breadth-first (a priority queue by depth, so no barrier between levels) inside
the allowed domains and hands each URL's single outcome to a sink: a page record (``write_page``) or a
failure record (``write_failure``). Every URL it takes from the frontier ends in exactly one of the two.

Politeness is per origin (``scheme://host:port``): robots.txt (stdlib ``urllib.robotparser``, fetched
through the same session; it knows no ``*``/``$`` path wildcards and only whole-second Crawl-delay), a semaphore of ``per_host_concurrency``
and a minimum spacing of ``delay_s`` between request starts, Retry-After on 429/503 (pauses the whole
origin), and exponential backoff with jitter on timeouts, connection errors, 408, 429 and 5xx.

robots.txt outcomes: 2xx -> obeyed; 4xx -> allow all (RFC 9309: "unavailable"); 5xx after the retries ->
disallow all (RFC 9309: "unreachable" - the server says it is in trouble, so we stay away);
timeouts/connection errors after the retries -> allow all (the pages' own fetches will then fail and be
recorded, rather than every URL being written off as disallowed).

Duplicates end as failures of stage ``dedup`` ("duplicate_content of <url>"): a body whose decoded text
hashes like an earlier page's; a page whose ``<link rel="canonical">`` names another allowed URL (its
links are still followed, and the canonical URL is queued); a redirect to a URL the crawl already has
(not requested again). A redirect to a new URL claims it: the record has ``url`` = the redirecting URL,
``final_url`` = the target, and the target gets no record of its own, so downstream code should key a
document by ``final_url``.

The crawler holds no global state: a Ray task may run ``asyncio.run(crawl(...))`` for its own group of
hosts. Resume: :func:`load_progress` reads a :class:`ParquetSink` directory back into ``done_urls`` and
``frontier`` (and :func:`load_content_hashes` into ``content_hashes``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.utils
import hashlib
import html as html_lib
import logging
import math
import os
import random
import re
import time
import urllib.robotparser
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
import pyarrow as pa

from seqlab.artifacts import atomic_output, is_uri
from seqlab.data.config import SourcesConfig
from seqlab.data.extract import decode_html
from seqlab.data.urls import _normalize_absolute, normalize_url

__all__ = [
    "FAILURE_SCHEMA",
    "PAGE_SCHEMA",
    "CrawlStats",
    "MemorySink",
    "ParquetSink",
    "Sink",
    "canonical_url",
    "crawl",
    "extract_links",
    "failure_reason",
    "load_content_hashes",
    "load_progress",
    "normalize_url",
]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10  # hops followed per attempt; more -> failure "too_many_redirects"
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB of robots.txt
PROGRESS_EVERY_S = 1.0  # how often the progress callback is called
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHUNK = 64 * 1024

# ---------------------------------------------------------------------------------------------------------
# URLs

_HREF = re.compile(r"""<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_BASE_HREF = re.compile(r"""<base\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_SKIP_HREF = re.compile(r"#|(?:javascript|mailto|tel|data|whatsapp|sms):", re.IGNORECASE)


def extract_links(html: str, base_url: str) -> list[str]:
    """Normalized http(s) targets of the page's ``<a href>`` links, first-seen order, no repeats.

    A regex rather than an HTML parser: the crawler only needs the link graph, and this is many times
    faster than BeautifulSoup on the event loop (``seqlab bench scrape`` prints both). ``<base href>``
    is honoured; entities in hrefs (``&amp;``) are unescaped.
    """
    base_match = _BASE_HREF.search(html)
    if base_match:
        base_url = urljoin(base_url, html_lib.unescape(next(g for g in base_match.groups() if g is not None)))
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    links: dict[str, None] = {}
    for match in _HREF.finditer(html):
        raw = match.group(1) if match.group(1) is not None else match.group(2) or match.group(3) or ""
        href = html_lib.unescape(raw).strip() if "&" in raw else raw.strip()
        if not href or _SKIP_HREF.match(href):
            continue
        if href.startswith("/") and not href.startswith("//"):
            link = _normalize_absolute(origin + href)  # the common case, without urljoin
        else:
            link = normalize_url(href, base_url)
        if link is not None:
            links.setdefault(link, None)
    return list(links)


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


def _origin(url: str) -> str:
    """``scheme://netloc`` of a normalized URL (string slicing: this runs for every link)."""
    slash = url.find("/", url.find("//") + 2)
    return url[:slash] if slash > 0 else url


def _in_domains(url: str, domains: Iterable[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in domains)


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


# ---------------------------------------------------------------------------------------------------------
# Sinks

PAGE_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("final_url", pa.string()),
        ("depth", pa.int32()),
        ("status_code", pa.int32()),
        ("content_type", pa.string()),
        ("encoding", pa.string()),
        ("html", pa.large_string()),
        ("outlinks", pa.list_(pa.string())),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("attempts", pa.int32()),
        ("elapsed_s", pa.float64()),
        ("content_hash", pa.string()),
    ]
)
FAILURE_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("attempts", pa.int32()),
        ("status_code", pa.int32()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("depth", pa.int32()),
    ]
)


class Sink(Protocol):
    """Where the crawler puts its records (see :class:`ParquetSink`, :class:`MemorySink`)."""

    def write_page(self, record: dict[str, Any]) -> None: ...

    def write_failure(self, record: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...


class MemorySink:
    """Keeps records in two lists (tests, small runs)."""

    def __init__(self) -> None:
        self.pages: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def write_page(self, record: dict[str, Any]) -> None:
        self.pages.append(record)

    def write_failure(self, record: dict[str, Any]) -> None:
        self.failures.append(record)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def outcome_by_url(self) -> dict[str, str]:
        """url -> ``"ok"`` or the failure reason (a URL seen twice would raise: that is a crawler bug)."""
        outcomes: dict[str, str] = {}
        for rec in self.pages:
            if rec["url"] in outcomes:
                raise AssertionError(f"{rec['url']} recorded twice")
            outcomes[rec["url"]] = "ok"
        for rec in self.failures:
            if rec["url"] in outcomes:
                raise AssertionError(f"{rec['url']} recorded twice")
            outcomes[rec["url"]] = failure_reason(rec["error"])
        return outcomes


class ParquetSink:
    """Appends records as small Parquet parts: ``raw/part-<uuid>.parquet`` and
    ``failures/part-<uuid>.parquet`` under ``directory`` (local path or ``pyarrow.fs`` URI).

    A part is written every ``flush_rows`` records or ``flush_s`` seconds (checked on each write), on
    :meth:`flush` and on :meth:`close`. Local parts are written to a hidden temp file and renamed, and
    object-store puts are atomic, so readers (and a resumed run) never see half a part; a crash loses at
    most the unflushed buffer. Several sinks (e.g. one per Ray task) may share one directory.
    """

    def __init__(self, directory: str | os.PathLike[str], flush_rows: int = 200, flush_s: float = 10.0):
        self.directory = str(directory)
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self._pages: list[dict[str, Any]] = []
        self._failures: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self.parts_written = 0

    def write_page(self, record: dict[str, Any]) -> None:
        self._pages.append(record)
        self._maybe_flush()

    def write_failure(self, record: dict[str, Any]) -> None:
        self._failures.append(record)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        pending = len(self._pages) + len(self._failures)
        if pending >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write whatever is buffered as new parts."""
        if self._pages:
            self._write("raw", self._pages, PAGE_SCHEMA)
            self._pages = []
        if self._failures:
            self._write("failures", self._failures, FAILURE_SCHEMA)
            self._failures = []
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, kind: str, rows: list[dict[str, Any]], schema: Any) -> None:
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
        name = f"part-{uuid.uuid4().hex}.parquet"
        if is_uri(self.directory):
            import pyarrow.fs as pafs

            fs, root = pafs.FileSystem.from_uri(self.directory)
            fs.create_dir(f"{root}/{kind}", recursive=True)
            pq.write_table(table, f"{root}/{kind}/{name}", filesystem=fs)  # one PUT: atomic
        else:
            folder = Path(self.directory.removeprefix("file://"), kind)
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(folder / name, "wb") as fh:  # its temp is hidden: readers skip it
                pq.write_table(table, fh)
        self.parts_written += 1


def _read_parts(directory: str, kind: str, columns: list[str]) -> list[dict[str, list[Any]]]:
    """Column dicts of each finished part of ``directory/kind`` (none when the folder is missing)."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    if is_uri(directory):
        fs, root = pafs.FileSystem.from_uri(directory)
    else:
        fs, root = pafs.LocalFileSystem(), str(Path(directory.removeprefix("file://")).resolve())
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{kind}", allow_not_found=True))
    out = []
    for info in sorted(infos, key=lambda i: i.path):
        if info.type == pafs.FileType.File and info.base_name.startswith("part-"):
            out.append(pq.read_table(info.path, columns=columns, filesystem=fs).to_pydict())
    return out


def load_progress(directory: str | os.PathLike[str]) -> tuple[set[str], list[tuple[str, int]]]:
    """What a crawl into ``ParquetSink(directory)`` already did, for resuming it.

    Returns:
        ``(done_urls, frontier)``: every URL with a page or a permanent failure record, and
        ``(url, depth)`` for each outlink of a done page that is not done itself (at its smallest depth),
        sorted by depth. Pass both to :func:`crawl` (and :func:`load_content_hashes` as ``content_hashes``).
        A URL whose last failure was transient (:func:`is_transient`) is not done: the next run fetches it
        again, so a site that was down for a while is crawled once it is back.
    """
    directory = str(directory)
    done: set[str] = set()
    pages = _read_parts(directory, "raw", ["url", "depth", "outlinks"])
    for part in pages:
        done.update(part["url"])
    done.update(url for url, error in latest_failures(directory).items() if not is_transient(error))
    frontier: dict[str, int] = {}
    for part in pages:
        for depth, outlinks in zip(part["depth"], part["outlinks"], strict=True):
            for link in outlinks or ():
                if link not in done and frontier.get(link, math.inf) > depth + 1:
                    frontier[link] = depth + 1
    return done, sorted(frontier.items(), key=lambda item: (item[1], item[0]))


def latest_failures(directory: str | os.PathLike[str]) -> dict[str, str]:
    """``url -> error`` of each URL's most recent crawl failure record in ``directory/failures``.

    A URL retried after a transient failure may have several records (one per run); the newest, by
    ``fetched_at``, is its outcome. Records of URLs that later got a page are still returned here.
    """
    newest: dict[str, tuple[Any, str]] = {}
    for part in _read_parts(str(directory), "failures", ["url", "error", "fetched_at"]):
        for url, error, at in zip(part["url"], part["error"], part["fetched_at"], strict=True):
            if url not in newest or (at is not None and (newest[url][0] is None or at >= newest[url][0])):
                newest[url] = (at, str(error))
    return {url: error for url, (_, error) in newest.items()}


def load_content_hashes(directory: str | os.PathLike[str]) -> dict[str, str]:
    """``content_hash -> url`` of the pages already in ``directory`` (so a resumed crawl still dedups)."""
    hashes: dict[str, str] = {}
    for part in _read_parts(str(directory), "raw", ["url", "content_hash"]):
        for url, digest in zip(part["url"], part["content_hash"], strict=True):
            hashes.setdefault(digest, url)
    return hashes


# ---------------------------------------------------------------------------------------------------------
# Crawl state


@dataclasses.dataclass
class CrawlStats:
    """Counters of a crawl; ``progress`` callbacks receive the live object."""

    ok: int = 0
    failed_by_reason: Counter[str] = dataclasses.field(default_factory=Counter)
    attempts: int = 0  # HTTP attempts for pages (redirect hops of one attempt count once); no robots.txt
    queued: int = 0
    elapsed_s: float = 0.0

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
        return f"ok {self.ok} | {failed} | queued {self.queued} | {self.pages_per_s:.1f} pages/s"


class _Host:
    """Politeness state of one origin: in-flight slots, start spacing, Retry-After pauses, robots."""

    def __init__(self, concurrency: int, delay_s: float):
        self.slots = asyncio.Semaphore(concurrency)
        self.delay_s = delay_s
        self.next_start = 0.0
        self.paused_until = 0.0
        self.robots: asyncio.Task[urllib.robotparser.RobotFileParser] | None = None

    async def turn(self) -> None:
        """Wait until a request may start: after any pause and ``delay_s`` after the previous start."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self.paused_until > now:
                await asyncio.sleep(self.paused_until - now)
                continue
            start = max(now, self.next_start)
            self.next_start = start + self.delay_s  # reserve the slot before sleeping (no await in between)
            if start > now:
                await asyncio.sleep(start - now)
            if self.paused_until <= loop.time():
                return

    def pause(self, seconds: float) -> None:
        """Nobody starts a request here for ``seconds`` (Retry-After)."""
        self.paused_until = max(self.paused_until, asyncio.get_running_loop().time() + seconds)


@dataclasses.dataclass
class _Outcome:
    """The end of one fetch attempt (a redirect chain) or of all of them."""

    final_url: str
    status: int | None = None
    content_type: str | None = None
    body: bytes | None = None
    error: str | None = None
    stage: str = "fetch"
    retryable: bool = False
    retry_after: float | None = None
    attempts: int = 0


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
    return min(max(seconds, 0.0), cap)


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
        self.session = session
        self.domains = sources.domains
        self.timeout = aiohttp.ClientTimeout(total=sources.request_timeout_s)
        self.headers = {"User-Agent": sources.user_agent}
        self.hosts: dict[str, _Host] = {}
        self.origin_allowed: dict[str, bool] = {}
        self.hashes = dict(content_hashes)
        self.seen = set(done_urls)
        # max_pages counts URLs processed, resumed ones included (only those of this crawl's domains).
        self.taken = sum(1 for u in done_urls if _in_domains(u, self.domains))
        self.queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self.seq = 0
        self.stats = CrawlStats()
        self.rng = random.Random()

    # -- frontier ---------------------------------------------------------------------------------------
    def in_domain(self, url: str) -> bool:
        """Whether a normalized URL's host is allowed (cached per origin)."""
        origin = _origin(url)
        allowed = self.origin_allowed.get(origin)
        if allowed is None:
            allowed = self.origin_allowed[origin] = _in_domains(origin, self.domains)
        return allowed

    def enqueue(self, url: str, depth: int) -> None:
        if url in self.seen or depth > self.cfg.max_depth or not self.in_domain(url):
            return
        self.seen.add(url)
        self.seq += 1
        self.queue.put_nowait((depth, self.seq, url))

    async def worker(self) -> None:
        while True:
            depth, _, url = await self.queue.get()
            try:
                if self.taken < self.cfg.max_pages:
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
        if not await self.allowed(url):
            self.fail(url, depth, "robots", "robots_disallowed", 0, None)
            return
        started = time.monotonic()
        out = await self.fetch(url)
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
            and await self.allowed(canonical)
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

    # -- politeness -------------------------------------------------------------------------------------
    def host(self, url: str) -> _Host:
        origin = _origin(url)
        host = self.hosts.get(origin)
        if host is None:
            host = self.hosts[origin] = _Host(self.cfg.per_host_concurrency, self.cfg.delay_s)
        return host

    async def allowed(self, url: str) -> bool:
        if not self.cfg.obey_robots:
            return True
        host = self.host(url)
        if host.robots is None:
            host.robots = asyncio.create_task(self.load_robots(url, host))
        robots = host.robots.result() if host.robots.done() else await asyncio.shield(host.robots)
        return robots.can_fetch(self.cfg.user_agent, url)

    async def load_robots(self, url: str, host: _Host) -> urllib.robotparser.RobotFileParser:
        robots_url = _origin(url) + "/robots.txt"
        parser = urllib.robotparser.RobotFileParser(robots_url)
        out = await self.fetch(robots_url, robots=True)
        if out.error is None:
            parser.parse((out.body or b"").decode("utf-8", errors="replace").splitlines())
            delay = parser.crawl_delay(self.cfg.user_agent)
            if delay is not None:
                host.delay_s = max(host.delay_s, float(delay))
        elif out.status is not None and out.status >= 500:
            log.warning("%s answers %s: treating the host as disallowed", robots_url, out.status)
            parser.disallow_all = True
        else:
            log.info("%s unavailable (%s): allowing all", robots_url, out.error)
            parser.allow_all = True
        return parser

    # -- fetching ---------------------------------------------------------------------------------------
    async def fetch(self, url: str, robots: bool = False) -> _Outcome:
        """Fetch with retries; the outcome's ``attempts`` counts them."""
        claimed: set[str] = set()  # redirect targets this fetch took over (see follow)
        attempt = 0
        while True:
            attempt += 1
            try:
                out = await self.follow(url, robots, claimed)
            except (TimeoutError, asyncio.TimeoutError):  # total/connect timeouts (distinct types on 3.10)
                out = _Outcome(url, error="timeout", retryable=True)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                out = _Outcome(url, error=f"connection_error: {type(exc).__name__}: {exc}", retryable=True)
            except aiohttp.ClientError as exc:
                out = _Outcome(url, error=f"client_error: {type(exc).__name__}: {exc}")
            if not out.retryable or attempt > self.cfg.retries:
                out.attempts = attempt
                return out
            if out.retry_after is not None:
                wait = out.retry_after
                self.host(out.final_url).pause(wait)
            else:  # exponential backoff with "equal jitter": half fixed, half random
                base = min(self.cfg.backoff_s * 2 ** (attempt - 1), self.cfg.max_retry_after_s)
                wait = base / 2 + self.rng.uniform(0, base / 2)
            log.debug("retrying %s in %.2fs after %s", url, wait, out.error)
            await asyncio.sleep(wait)

    async def follow(self, url: str, robots: bool, claimed: set[str]) -> _Outcome:
        """One attempt: request ``url`` and follow redirects by hand, so that an off-site, disallowed or
        already crawled target is never requested."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            out, location = await self.request(current, robots)
            if location is None:
                return out
            target = normalize_url(location, current)
            if target is None:
                return _Outcome(current, status=out.status, error=f"bad_redirect: {location}")
            if not robots:
                if not self.in_domain(target):
                    return _Outcome(target, status=out.status, error=f"offsite_redirect: {target}")
                if not await self.allowed(target):
                    return _Outcome(target, status=out.status, stage="robots", error="robots_disallowed")
                if target != url and target not in claimed:
                    if target in self.seen:  # queued or done under its own URL: record it once, there
                        return _Outcome(
                            target, status=out.status, stage="dedup", error=f"duplicate_content of {target}"
                        )
                    self.seen.add(target)
                    claimed.add(target)
            current = target
        return _Outcome(current, error="too_many_redirects")

    async def request(self, url: str, robots: bool) -> tuple[_Outcome, str | None]:
        """One HTTP request under the host's politeness; returns the outcome and a redirect Location."""
        host = self.host(url)
        async with host.slots:
            await host.turn()
            async with self.session.get(
                url, allow_redirects=False, timeout=self.timeout, headers=self.headers
            ) as resp:
                status = resp.status
                ctype = resp.headers.get("Content-Type")
                if 300 <= status < 400 and resp.headers.get("Location"):
                    return _Outcome(url, status=status), resp.headers["Location"]
                if status >= 400 or status < 200:
                    retry_after = None
                    if status in (429, 503):
                        retry_after = _retry_after(
                            resp.headers.get("Retry-After"), self.cfg.max_retry_after_s
                        )
                    retryable = status in (408, 429) or status >= 500
                    resp.close()  # do not download an error body
                    return _Outcome(
                        url,
                        status=status,
                        error=f"http_{status}",
                        retryable=retryable,
                        retry_after=retry_after,
                    ), None
                mime = (ctype or "").split(";")[0].strip().lower()
                if not robots and mime and mime not in _HTML_TYPES:
                    resp.close()  # abandon the body unread
                    return _Outcome(url, status=status, content_type=ctype, error=f"non_html: {mime}"), None
                limit = ROBOTS_MAX_BYTES if robots else self.cfg.max_bytes
                if not robots and (resp.content_length or 0) > limit:
                    resp.close()
                    return _Outcome(
                        url, status=status, content_type=ctype, error=f"too_large: > {limit} bytes"
                    ), None
                body = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        resp.close()
                        if robots:  # parse the first 512 KiB, as RFC 9309 allows
                            return _Outcome(url, status=status, body=bytes(body[:limit])), None
                        return _Outcome(
                            url, status=status, content_type=ctype, error=f"too_large: > {limit} bytes"
                        ), None
                return _Outcome(url, status=status, content_type=ctype, body=bytes(body)), None


def _new_session(sources: SourcesConfig) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        # Our semaphores bound concurrency; the connector must not add a lower global cap.
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": sources.user_agent},
        trust_env=False,
    )


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
    session = session or _new_session(sources)
    crawler = _Crawler(sources, sink, session, set(done_urls or ()), content_hashes or {})
    start = [(normalize_url(seed), 0) for seed in sources.seeds] + list(frontier or ())
    for url, depth in start:
        if url is not None:
            crawler.enqueue(url, depth)

    started = time.monotonic()
    # Enough workers to fill every origin's slots (a worker waiting on a busy origin holds no request).
    n_origins = len({_origin(url) for url, _ in start if url is not None})
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
        for host in crawler.hosts.values():
            if host.robots is not None and not host.robots.done():
                host.robots.cancel()
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
