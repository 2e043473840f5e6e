"""``seqlab bench extract``: article extraction on real Arabic pages (quality) and pages/s per core (speed).

Quality: token F1 of each real page's extracted text against its gold article body (the pages of
``tests/data/real_pages``, or ``--pages DIR`` laid out the same way: ``NAME.html`` + ``NAME.gold.txt``), for

- ``seqlab``: :func:`seqlab.data.extract.extract_article` (trafilatura + seqlab's Arabic rules);
- ``trafilatura``: ``trafilatura.extract`` alone, on the same decoded text;
- ``seqlab before``: the BeautifulSoup rules that were seqlab's whole extractor before trafilatura
  (:func:`seqlab.data.heuristic.heuristic_text`, now its fallback);
- ``readability``, ``justext``, ``resiliparse`` when they are installed (they are not dependencies:
  ``pip install readability-lxml justext resiliparse`` to compare them too).

Speed: pages/s of ``seqlab`` and ``seqlab before`` on one pinned core, on the real pages and on the local
site's pages (crawled once, off the clock), best of ``--repeat`` rounds with the order rotated each round
(:func:`seqlab.bench.normalize.best_times`). The goal: the new extractor costs at most 2x the old per page.
``--ray`` also times Ray Data's extract step on 1 and on 2 CPUs (it must stay parallel).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from seqlab.bench.normalize import best_times, one_core
from seqlab.config import ConfigError

__all__ = ["token_f1"]

_TOKEN = re.compile(r"\w+")
DEFAULT_PAGES = Path(__file__).resolve().parents[2] / "tests" / "data" / "real_pages"
COST_GOAL = 2.0  # the new extractor may cost at most this many times the old per page


def token_f1(predicted: str, gold: str) -> float:
    """F1 of the two texts' bags of word tokens (``\\w+``): the measure of the real-pages table."""
    p, g = Counter(_TOKEN.findall(predicted)), Counter(_TOKEN.findall(gold))
    common = sum((p & g).values())
    if not common:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pages", type=Path, default=DEFAULT_PAGES, help="folder of NAME.html + NAME.gold.txt real pages"
    )
    parser.add_argument(
        "--site-docs", type=int, default=200, help="local-site articles to time (default 200)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timing rounds; the best counts (default 5)")
    parser.add_argument("--ray", action="store_true", help="also time Ray Data's extract step on 1 vs 2 CPUs")
    parser.add_argument(
        "--ray-pages",
        type=int,
        default=2000,
        help="pages for --ray (the site's articles repeated; default 2000: with a few hundred, Ray's "
        "per-pass overhead hides the second CPU)",
    )


def contenders() -> dict[str, Callable[[str], str]]:
    """Extractors by name: html -> text (the optional ones only when installed)."""
    import trafilatura

    from seqlab.data.extract import extract_article
    from seqlab.data.heuristic import heuristic_text

    out: dict[str, Callable[[str], str]] = {
        "seqlab": lambda html: extract_article(html).text,
        "trafilatura": lambda html: (
            trafilatura.extract(html, include_comments=False, include_tables=False) or ""
        ),
        "seqlab before": heuristic_text,
    }
    try:
        import lxml.html
        from readability import Document

        def readability(html: str) -> str:
            summary = Document(html).summary()
            return lxml.html.fromstring(summary).text_content() if summary else ""

        out["readability"] = readability
    except ImportError:
        pass
    try:
        import justext

        stoplist = justext.get_stoplist("Arabic")
        out["justext"] = lambda html: "\n".join(
            p.text for p in justext.justext(html.encode("utf-8"), stoplist) if not p.is_boilerplate
        )
    except (ImportError, ValueError):
        pass
    try:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        out["resiliparse"] = lambda html: extract_plain_text(HTMLTree.parse(html), main_content=True)
    except ImportError:
        pass
    return out


def real_pages(folder: Path) -> dict[str, tuple[str, str]]:
    """NAME -> (decoded html, gold text)."""
    from seqlab.data.decode import decode_html

    pages = {}
    for path in sorted(folder.glob("*.html")):
        gold = path.with_name(path.stem + ".gold.txt")
        if gold.exists():
            pages[path.stem] = (decode_html(path.read_bytes(), None)[0], gold.read_text(encoding="utf-8"))
    return pages


def site_pages(n_docs: int) -> list[str]:
    """The local site's article pages (faults off), crawled once."""
    from seqlab.data.config import SourcesConfig
    from seqlab.data.scrape import MemorySink, crawl
    from seqlab.synth.corpus import generate_documents
    from seqlab.synth.site import LocalSite

    with LocalSite(generate_documents(n_docs, 0), port=0, faults=False, seed=0) as site:
        sink = MemorySink()
        cfg = SourcesConfig(seeds=[site.index_url], delay_s=0, per_host_concurrency=16, max_depth=4)
        asyncio.run(crawl(cfg, sink=sink))
    return [p["html"] for p in sink.pages if "/articles/" in p["final_url"]]


def quality(
    pages: dict[str, tuple[str, str]], extractors: dict[str, Callable[[str], str]]
) -> dict[str, float]:
    """Print the per-page F1 table; return each extractor's mean."""
    names = list(extractors)
    print(f"\nquality: token F1 against the gold article text, {len(pages)} real pages")
    print(f"  {'page':<34}" + "".join(f"{n[:13]:>14}" for n in names))
    scores: dict[str, list[float]] = {n: [] for n in names}
    for stem, (html, gold) in pages.items():
        row = []
        for name in names:
            try:
                score = token_f1(extractors[name](html), gold)
            except Exception:  # a competitor that crashes scores 0 on that page
                score = 0.0
            scores[name].append(score)
            row.append(score)
        print(f"  {stem[:33]:<34}" + "".join(f"{s:>14.3f}" for s in row))
    means = {n: sum(v) / len(v) for n, v in scores.items()}
    arabic = [i for i, stem in enumerate(pages) if stem.startswith("ar_")]
    print(f"  {'mean':<34}" + "".join(f"{means[n]:>14.3f}" for n in names))
    if arabic:
        print(
            f"  {'mean, Arabic pages (ar_*)':<34}"
            + "".join(f"{sum(scores[n][i] for i in arabic) / len(arabic):>14.3f}" for n in names)
        )
    print(f"  {'lowest page':<34}" + "".join(f"{min(scores[n]):>14.3f}" for n in names))
    worse = [s for i, s in enumerate(pages) if scores["seqlab"][i] < scores["trafilatura"][i] - 1e-9]
    print(f"  pages where seqlab < trafilatura alone: {worse or 'none'}")
    return means


def speed(label: str, htmls: list[str], extractors: dict[str, Callable[[str], str]], repeat: int) -> float:
    """Print pages/s on one core; return the new extractor's cost per page over the old one's."""
    runs = {name: (lambda fn=fn: [fn(h) for h in htmls]) for name, fn in extractors.items()}
    with one_core() as pinned:
        timed = best_times(runs, repeat)
    print(f"\nspeed on {label}: {len(htmls)} pages, best of {repeat} rounds, {pinned}")
    for name, (secs, _) in timed.items():
        print(f"  {name:<16}{len(htmls) / secs:>10.1f} pages/s  {1000 * secs / len(htmls):>8.2f} ms/page")
    ratio = timed["seqlab"][0] / timed["seqlab before"][0]
    print(f"  seqlab ÷ seqlab before: {ratio:.2f}x the time per page")
    return ratio


def ray_speed(htmls: list[str], repeat: int) -> None:
    """Ray Data's extract step (``extract_batch`` through ``map_batches``) on 1 and on 2 CPUs, best of
    ``repeat`` passes after a warm-up, on a fresh local Ray each (:func:`seqlab.bench.pipeline.local_ray`)."""
    import pandas as pd

    from seqlab.bench.pipeline import local_ray, wait_for_free_cpus
    from seqlab.data.extract import extract_batch

    frame = pd.DataFrame({"url": [f"http://site/{i}" for i in range(len(htmls))], "html": htmls})
    blocks = 8  # several blocks per CPU, so both CPUs have work to the end
    parts = [frame.iloc[i::blocks] for i in range(blocks)]
    rates = {}
    for cpus in (1, 2):
        with local_ray(cpus, 512 * 1024 * 1024) as ray:
            source = ray.data.from_pandas(parts)
            best = float("inf")
            for n in range(repeat + 1):  # pass 0 warms the workers up (imports, trafilatura's config)
                wait_for_free_cpus(ray, cpus)
                start = time.perf_counter()
                source.map_batches(extract_batch, batch_format="pandas", batch_size=16).materialize()
                if n:
                    best = min(best, time.perf_counter() - start)
            rates[cpus] = len(htmls) / best
    print(
        f"\nRay Data extract step ({len(htmls)} local-site pages, {blocks} blocks): {rates[1]:.1f} pages/s on "
        f"1 CPU, {rates[2]:.1f} on 2 ({rates[2] / rates[1]:.2f}x)"
    )


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1 or args.site_docs < 1:
        raise ConfigError("--repeat and --site-docs must be >= 1")
    pages = real_pages(args.pages)
    if not pages:
        raise ConfigError(f"no NAME.html + NAME.gold.txt pages in {args.pages}")
    extractors = contenders()
    means = quality(pages, extractors)
    timed = {k: extractors[k] for k in ("seqlab", "seqlab before")}
    real_ratio = speed("the real pages", [html for html, _ in pages.values()], timed, args.repeat)
    site = site_pages(args.site_docs)
    site_ratio = speed("the local site's articles", site, timed, args.repeat)
    if args.ray:
        ray_speed((site * (args.ray_pages // len(site) + 1))[: args.ray_pages], min(args.repeat, 3))
    best_other = max((m, n) for n, m in means.items() if n != "seqlab")
    print(
        f"\nseqlab mean F1 {means['seqlab']:.3f} vs best other {best_other[1]} {best_other[0]:.3f}; "
        f"cost per page vs before: {real_ratio:.2f}x (real), {site_ratio:.2f}x (site), goal <= {COST_GOAL}x: "
        + ("met" if max(real_ratio, site_ratio) <= COST_GOAL else "NOT met")
    )
    return 0
