"""``seqlab bench scrape``: crawler pages/s against the local site with injected latency.

The site (``LocalSite(faults=False, latency_s=...)``) runs in a child process so that its CPU does not
share the crawler's GIL. Per concurrency ``c`` (= ``per_host_concurrency``, ``delay_s=0``) it prints:

- ``crawl``: :func:`seqlab.data.scrape.crawl` seeded with the home and section pages, ``--pages`` URLs
  (robots.txt, link parsing, decoding, dedup, in a MemorySink), startup included;
- ``bare``: a baseline measured in the same run, plain ``aiohttp`` GETs of the same number of article
  URLs under a ``Semaphore(c)`` (no politeness, parsing or BFS);
- the bound ``c / latency`` (every slot always busy, zero CPU) and the ratios crawl/bound, crawl/bare.

It also times the two ways of finding links in a page (the crawler's regex vs BeautifulSoup).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import time
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pages", type=int, default=400, help="URLs the crawl processes (default 400)")
    parser.add_argument(
        "--latency-ms", type=float, default=50.0, help="site latency per request (default 50)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[64],
        help="per-host concurrency; several values print a table (e.g. 8 32 64)",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs per setting; the best is shown (default 2)"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="serve the site from a thread of this process instead"
    )
    parser.add_argument(
        "--from-index",
        action="store_true",
        help="seed the crawl with the home page only (default: the home page and every section page, "
        "as a crawler seeded from a sitemap would; from the index alone, the chain robots -> index -> "
        "section -> page 2 -> ... is a few round trips that no concurrency can shorten)",
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")


def _serve(conn: Any, n_docs: int, latency_s: float, seed: int, site_kw: dict[str, Any]) -> None:
    """Child process: serve the site until the parent says stop (or dies)."""
    from seqlab.synth.corpus import generate_documents
    from seqlab.synth.site import LocalSite

    with LocalSite(
        generate_documents(n_docs, seed), port=0, latency_s=latency_s, faults=False, seed=seed, **site_kw
    ) as site:
        conn.send((site.nav_urls, site.article_urls))
        try:
            conn.recv()
        except EOFError:
            pass


class SiteProcess:
    """The local site of ``generate_documents(n_docs, seed)`` in a child process (or a thread with
    ``in_process``), without faults; ``site_kw`` are more :class:`~seqlab.synth.config.SiteConfig` fields.
    Entering yields ``(nav_urls, article_urls)``."""

    def __init__(self, n_docs: int, latency_s: float, seed: int, in_process: bool = False, **site_kw: Any):
        self.args = (n_docs, latency_s, seed, site_kw)
        self.in_process = in_process

    def __enter__(self) -> tuple[list[str], list[str]]:
        if self.in_process:
            from seqlab.synth.corpus import generate_documents
            from seqlab.synth.site import LocalSite

            n_docs, latency_s, seed, site_kw = self.args
            self.site = LocalSite(
                generate_documents(n_docs, seed),
                port=0,
                latency_s=latency_s,
                faults=False,
                seed=seed,
                **site_kw,
            ).start()
            return self.site.nav_urls, self.site.article_urls
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, *self.args), daemon=True)
        self.proc.start()
        if not self.conn.poll(120):
            self.proc.kill()
            raise RuntimeError("the local site did not start within 120 s")
        return self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        if self.in_process:
            self.site.stop()
            return
        self.conn.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


async def _bare(urls: list[str], concurrency: int) -> float:
    """Pages/s of plain aiohttp GETs (read the body, nothing else)."""
    import aiohttp

    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(url: str) -> None:
            async with slots, session.get(url) as resp:
                await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(get(u) for u in urls))
        return len(urls) / (time.perf_counter() - started)


def _crawl(seeds: list[str], pages: int, concurrency: int) -> tuple[float, int]:
    from seqlab.data.config import SourcesConfig
    from seqlab.data.scrape import MemorySink, crawl

    sources = SourcesConfig(
        seeds=seeds, per_host_concurrency=concurrency, delay_s=0.0, max_pages=pages, max_depth=10
    )
    sink = MemorySink()
    stats = asyncio.run(crawl(sources, sink=sink))
    return stats.pages_per_s, stats.ok


def _link_parsing(urls: list[str]) -> tuple[float, float]:
    """ms/page to find links: the crawler's regex vs BeautifulSoup('html.parser')."""
    import aiohttp
    from bs4 import BeautifulSoup

    from seqlab.data.scrape import extract_links, normalize_url

    async def fetch() -> list[str]:
        async with aiohttp.ClientSession() as session:
            out = []
            for url in urls:
                async with session.get(url) as resp:
                    out.append(await resp.text())
            return out

    htmls = asyncio.run(fetch())
    started = time.perf_counter()
    for html, url in zip(htmls, urls, strict=True):
        extract_links(html, url)
    regex_ms = (time.perf_counter() - started) * 1e3 / len(htmls)
    started = time.perf_counter()
    for html, url in zip(htmls, urls, strict=True):
        soup = BeautifulSoup(html, "html.parser")
        [normalize_url(a["href"], url) for a in soup.find_all("a", href=True)]
    bs4_ms = (time.perf_counter() - started) * 1e3 / len(htmls)
    return regex_ms, bs4_ms


def run(args: argparse.Namespace) -> int:
    logging.getLogger("seqlab.data.scrape").setLevel(logging.WARNING)  # no "crawl done" line per run
    latency_s = args.latency_ms / 1000
    print(
        f"seqlab bench scrape: {args.pages} pages, site latency {args.latency_ms:g} ms, delay_s=0, "
        f"site {'in this process' if args.in_process else 'in a child process'}, best of {args.repeats}"
    )
    with SiteProcess(args.pages + 50, latency_s, args.seed, args.in_process) as (nav_urls, article_urls):
        seeds = nav_urls[:1] if args.from_index else nav_urls
        print(f"seeds: {len(seeds)} ({'home page' if args.from_index else 'home page and section pages'})")
        _crawl(seeds, args.pages, max(args.concurrency))  # warm-up: the site renders and caches pages
        print(
            f"{'conc':>5} {'crawl p/s':>10} {'bare p/s':>10} {'bound p/s':>10} {'crawl/bound':>12} {'crawl/bare':>11}"
        )
        for conc in args.concurrency:
            crawl_rate = max(_crawl(seeds, args.pages, conc)[0] for _ in range(args.repeats))
            bare_rate = max(asyncio.run(_bare(article_urls[: args.pages], conc)) for _ in range(args.repeats))
            bound = conc / latency_s
            print(
                f"{conc:>5} {crawl_rate:>10.1f} {bare_rate:>10.1f} {bound:>10.1f} "
                f"{crawl_rate / bound:>12.2f} {crawl_rate / bare_rate:>11.2f}"
            )
        regex_ms, bs4_ms = _link_parsing(article_urls[:50])
    print(
        f"link finding: regex {regex_ms:.3f} ms/page vs BeautifulSoup {bs4_ms:.3f} ms/page "
        f"({bs4_ms / regex_ms:.1f}x)"
    )
    return 0
