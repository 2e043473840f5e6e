"""A polite async crawler (aiohttp) that writes raw page records; extraction happens downstream.

:func:`crawl` walks the seeds breadth-first inside the allowed domains and hands each URL's single outcome
to a sink: a page record (``write_page``) or a failure record (``write_failure``). Every URL it takes from
the frontier ends in exactly one of the two.

Politeness is per origin (``scheme://host:port``): robots.txt, a semaphore of ``per_host_concurrency``
and a minimum spacing of ``delay_s`` between request starts, Retry-After on 429/503 (pauses the whole
origin), and exponential backoff with jitter on timeouts, connection errors, 408, 429 and 5xx.

The crawler holds no global state: a Ray task may run ``asyncio.run(crawl(...))`` for its own group of
hosts. Resume: :func:`load_progress` reads a :class:`ParquetSink` directory back into ``done_urls`` and
``frontier`` (and :func:`load_content_hashes` into ``content_hashes``, :func:`load_ranks` into ``ranks``).

Modules (none imports Ray; only ``fetch`` and ``crawler`` import aiohttp):

- ``links``: :func:`extract_links`, :func:`canonical_url`, origin and domain tests. Pure.
- ``failures``: :func:`failure_reason`, :func:`is_transient` - the vocabulary of failure records. Pure.
- ``politeness``: per-origin slots, start spacing and Retry-After pauses; Retry-After parsing and
  backoff. Pure (asyncio).
- ``robots``: robots.txt fetched once per origin through the fetcher, its outcomes, Crawl-delay. No aiohttp.
- ``fetch``: one URL's HTTP fetch (aiohttp) with retries and hand-followed redirects.
- ``sink``: :class:`Sink`, :class:`MemorySink`, :class:`ParquetSink`, the record schemas, and the readers
  of a sink's directory (:func:`load_progress`, :func:`load_content_hashes`, :func:`latest_failures`).
  Pure (pyarrow).
- ``focus``: :class:`FocusScorer` - a trained scorer's ranks of links and pages for a focused crawl
  (batched off the event loop; torch only once :func:`load_focus` runs).
- ``crawler``: the crawl loop - frontier, workers, dedup, records - :func:`crawl` and :class:`CrawlStats`.
"""

from seqlab.data.scrape.crawler import CrawlStats, crawl
from seqlab.data.scrape.failures import failure_reason, is_transient
from seqlab.data.scrape.links import canonical_url, extract_links
from seqlab.data.scrape.sink import (
    FAILURE_SCHEMA,
    PAGE_SCHEMA,
    MemorySink,
    ParquetSink,
    Sink,
    latest_failures,
    load_content_hashes,
    load_progress,
    load_ranks,
)
from seqlab.data.urls import normalize_url

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
    "is_transient",
    "latest_failures",
    "load_content_hashes",
    "load_progress",
    "load_ranks",
    "normalize_url",
]
