"""``seqlab bench crawl``: a focused crawl's harvest against today's breadth-first order, on the local site.

The local site's sections are topical and every document's relevance label is known (label >= 7: truly
relevant, all of the ``technology`` theme's best). A scorer is first trained, with the project's own
training loop, on documents of a *different* seed than the sites crawled (disjoint documents; the same
sentence bank). Then for each site seed both orders crawl the whole site from its home page, with the site
in a child process (its CPU does not share the crawler's GIL):

- ``bfs``: today's order (``SourcesConfig`` without focus);
- ``focus``: the same crawl with ``focus`` = that scorer (links ranked by their text and their page).

Printed, median over the seeds: the harvest rate (truly relevant pages / pages fetched) after 10 %, 25 %
and 50 % of the site's pages, the fetches each order needs to have found every relevant page, and the
crawl rate (pages/s, whole crawl) of focus over bfs. ``--plain-links`` runs the same on a site whose links
say only "read more" (no topical text before the fetch): where focus has little to go on. A plot of harvest
rate against pages fetched is written to ``--plot``. Example::

    seqlab bench crawl --seeds 1 2 3 --docs 700
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

RELEVANT = 7.0  # a page is truly relevant when its document's label is at least this
BUDGETS = (0.10, 0.25, 0.50)  # shares of the site's pages at which the harvest rate is read
TRAIN_SEED = 10_000  # the scorer's documents: a seed no site of the benchmark uses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docs", type=int, default=700, help="articles per site (default 700)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="site seeds (default 1 2 3)")
    parser.add_argument(
        "--train-docs", type=int, default=1500, help="documents the scorer is trained on (default 1500)"
    )
    parser.add_argument("--epochs", type=int, default=6, help="scorer training epochs (default 6)")
    parser.add_argument("--blend", type=float, default=0.3, help="focus blend (default 0.3)")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="site latency per request (default 20)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="per-host concurrency, delay_s=0 (default 8)"
    )
    parser.add_argument(
        "--plain-links", action="store_true", help="also crawl sites whose links say only 'read more'"
    )
    parser.add_argument("--scorer", help="use this scorer directory instead of training one")
    parser.add_argument(
        "--plot", default="out/bench_crawl.png", help="harvest-rate plot (PNG; 'none' to skip)"
    )


def train_scorer(out_dir: str, n_docs: int, epochs: int) -> dict[str, float]:
    """Train a small GRU scorer on ``generate_documents(n_docs, TRAIN_SEED)`` and save it to ``out_dir``."""
    import numpy as np

    from seqlab.models import RNNConfig, TokenizerConfig, encode_texts, save_scorer, train_tokenizer
    from seqlab.synth.corpus import generate_documents
    from seqlab.text import normalize
    from seqlab.text.config import NormalizeConfig
    from seqlab.train.data import EncodedCorpus, EncodedSplit
    from seqlab.train.regressor import TrainConfig, train_regressor

    docs = generate_documents(n_docs, TRAIN_SEED)
    # Each document twice: its text, and its title alone with the same label (a corpus has both columns):
    # a link shows little more than a title, and a model that saw only whole texts ranks titles poorly.
    texts = [normalize(t) for d in docs for t in (d.text, d.title)]
    scores = np.array([d.score for d in docs for _ in range(2)], dtype=np.float32)
    n_docs, n_val = len(texts), 2 * max(1, n_docs // 10)
    tok_cfg = TokenizerConfig(max_len=128)
    tokenizer = train_tokenizer(texts[n_val:], tok_cfg)

    def split(lo: int, hi: int) -> EncodedSplit:
        ids, offsets = encode_texts(tokenizer, texts[lo:hi])
        return EncodedSplit(ids=ids, offsets=offsets, scores=scores[lo:hi])

    data = EncodedCorpus(
        splits={"train": split(n_val, n_docs), "val": split(0, n_val)}, vocab_size=tokenizer.get_vocab_size()
    )
    model_cfg = RNNConfig(vocab_size=data.vocab_size, embed_dim=32, cell="gru", hidden=32, pooling="mean")
    result = train_regressor(model_cfg, TrainConfig(max_epochs=epochs, patience=0), data, final_eval=False)
    best = result.history[result.best_epoch - 1]
    metrics = {"val_rmse": best["val_rmse"], "val_r2": best["val_r2"]}
    save_scorer(out_dir, result.model, tokenizer, tok_cfg, metrics, normalize=NormalizeConfig())
    return metrics


def _labels(n_docs: int, seed: int) -> dict[str, float]:
    """Article path -> relevance label of the site of ``seed``."""
    from seqlab.synth.corpus import generate_documents

    return {f"/articles/{d.slug}.html": d.score for d in generate_documents(n_docs, seed)}


def _crawl(home: str, concurrency: int, focus: Any | None) -> tuple[list[str], float]:
    """Crawl the whole site from its home page: (stored page URLs in fetch order, pages/s)."""
    from seqlab.data.config import SourcesConfig
    from seqlab.data.scrape import MemorySink, crawl

    sources = SourcesConfig(
        seeds=[home],
        per_host_concurrency=concurrency,
        delay_s=0.0,
        max_pages=100_000,
        max_depth=50,
        focus=focus,
    )
    sink = MemorySink()
    stats = asyncio.run(crawl(sources, sink=sink))
    pages = sorted(sink.pages, key=lambda r: r["fetched_at"])
    return [r["url"] for r in pages], stats.pages_per_s


def order_metrics(urls: list[str], labels: dict[str, float], n_site: int) -> dict[str, Any]:
    """Harvest at each budget share, fetches to find every relevant page, and the harvest curve."""
    hits = [labels.get(urlsplit(u).path, 0.0) >= RELEVANT for u in urls]
    total = sum(hits)
    found, curve, last = 0, [], len(urls)
    for i, hit in enumerate(hits, 1):
        found += hit
        curve.append(found / i)
        if hit and found == total:
            last = i
    harvest = {b: sum(hits[: max(1, round(b * n_site))]) / max(1, round(b * n_site)) for b in BUDGETS}
    return {"harvest": harvest, "all_found_at": last, "relevant": total, "curve": curve}


def _run_site(args: argparse.Namespace, seed: int, focus: Any, **site_kw: Any) -> dict[str, Any]:
    from seqlab.bench.scrape import SiteProcess

    labels = _labels(args.docs, seed)
    with SiteProcess(args.docs, args.latency_ms / 1000, seed, **site_kw) as (nav_urls, _):
        home = nav_urls[0]
        _crawl(home, args.concurrency, None)  # warm-up: the site renders and caches every page
        bfs_urls, bfs_rate = _crawl(home, args.concurrency, None)
        focus_urls, focus_rate = _crawl(home, args.concurrency, focus)
    n_site = len(bfs_urls)
    return {
        "n_site": n_site,
        "bfs": order_metrics(bfs_urls, labels, n_site),
        "focus": order_metrics(focus_urls, labels, n_site),
        "rate_ratio": focus_rate / bfs_rate,
        "rates": (bfs_rate, focus_rate),
    }


def _report(title: str, runs: list[dict[str, Any]]) -> None:
    med = statistics.median
    print(f"\n{title}: median over {len(runs)} site(s) of {runs[0]['n_site']} pages")
    print(
        f"{'':>22}"
        + "".join(f"{f'harvest@{int(b * 100)}%':>14}" for b in BUDGETS)
        + f"{'all relevant at':>18}"
    )
    for name in ("bfs", "focus"):
        cells = "".join(f"{med(r[name]['harvest'][b] for r in runs):>14.2f}" for b in BUDGETS)
        found = med(r[name]["all_found_at"] for r in runs)
        print(f"{name:>22}{cells}{found:>12.0f} pages")
    ratios = "".join(
        f"{med(r['focus']['harvest'][b] / max(r['bfs']['harvest'][b], 1e-9) for r in runs):>13.2f}x"
        for b in BUDGETS
    )
    fetch_share = med(r["focus"]["all_found_at"] / r["bfs"]["all_found_at"] for r in runs)
    print(f"{'focus / bfs':>22}{ratios}{fetch_share:>17.2f}x fetches")
    rates = ", ".join(f"{b:.0f} -> {f:.0f}" for b, f in (r["rates"] for r in runs))
    print(
        f"crawl rate focus / bfs: {med(r['rate_ratio'] for r in runs):.2f} (pages/s per site, bfs -> focus: {rates})"
    )
    share = med(r["bfs"]["relevant"] / r["n_site"] for r in runs)
    print(
        f"relevant pages per site: {[r['bfs']['relevant'] for r in runs]} (share {share:.2f}: the harvest "
        "rate of a random order)"
    )


def _plot(path: str, results: dict[str, list[dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (title, runs) in zip(axes[0], results.items(), strict=True):
        for k, run in enumerate(runs):
            for name, style in (("bfs", "--"), ("focus", "-")):
                label = name if k == 0 else None
                color = "tab:gray" if name == "bfs" else "tab:blue"
                ax.plot(
                    range(1, len(run[name]["curve"]) + 1), run[name]["curve"], style, color=color, label=label
                )
        ax.set(title=title, xlabel="pages fetched", ylabel="harvest rate (label >= 7)", ylim=(0, 1.02))
        ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import torch

    from seqlab.data.config import FocusConfig

    logging.getLogger("seqlab.data.scrape").setLevel(logging.WARNING)  # no "crawl done" line per run
    torch.set_num_threads(1)  # one core for the crawler and its scorer thread, one for the site process
    print(
        f"seqlab bench crawl: sites of {args.docs} articles (seeds {args.seeds}), latency {args.latency_ms:g} ms, "
        f"per-host concurrency {args.concurrency}, delay_s=0, blend {args.blend}"
    )
    with tempfile.TemporaryDirectory(prefix="seqlab-bench-crawl-") as tmp:
        scorer = args.scorer
        if scorer is None:
            scorer = str(Path(tmp) / "scorer")
            started = time.perf_counter()
            metrics = train_scorer(scorer, args.train_docs, args.epochs)
            print(
                f"scorer: GRU trained on {args.train_docs} documents of seed {TRAIN_SEED} (disjoint from the "
                f"sites) in {time.perf_counter() - started:.0f} s: val RMSE {metrics['val_rmse']:.2f}, "
                f"R2 {metrics['val_r2']:.2f}"
            )
        focus = FocusConfig(scorer=scorer, blend=args.blend)
        results = {"topical links": [_run_site(args, seed, focus) for seed in args.seeds]}
        if args.plain_links:
            results["plain links ('read more')"] = [
                _run_site(args, seed, focus, link_titles=False) for seed in args.seeds
            ]
    for title, runs in results.items():
        _report(title, runs)
    if args.plot.lower() != "none":
        _plot(args.plot, results)
        print(f"\nplot: {args.plot}")
    return 0
