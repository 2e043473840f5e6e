"""Ray Data scrape pipeline: urls -> fetch -> extract -> normalize -> label -> Parquet.

Two phases, both resumable, both on Ray:

1. **Crawl** (politeness is per-host state, so it is sharded by host): hosts are split into
   ``num_crawl_tasks`` groups, each crawled by one Ray task running the async crawler
   (:func:`seqlab.data.scrape.crawl`). Raw pages stream to ``OUT/raw/`` and fetch failures to
   ``OUT/failures/`` as small, atomically written Parquet parts, so a crash loses at most one unflushed
   buffer and a re-run skips every URL already on disk.
2. **Process** (embarrassingly parallel): ``ray.data.read_parquet(OUT/raw)`` -> ``map_batches`` extract
   (trafilatura + seqlab's Arabic rules, :mod:`seqlab.data.extract`) -> Arabic-share filter -> normalize -> label -> split, then ``write_parquet`` to ``OUT/corpus/``.
   Pages dropped here (too little Arabic, nothing extracted) go to ``OUT/failures/process.parquet``. The
   corpus is rebuilt from ``raw/`` on every run (written to a temp dir, then swapped in), so re-runs are
   idempotent.

Every URL the crawler met therefore ends in exactly one place: ``corpus/`` or ``failures/``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from seqlab.artifacts import (
    claim_output_dir,
    is_uri,
    join,
    list_files,
    read_parquet,
    releases_outputs,
    resolve,
    staged_dir,
    write_bytes,
    write_manifest,
)
from seqlab.corpus import CORPUS_COLUMNS, CORPUS_SCHEMA, parquet_path
from seqlab.data.config import ScrapeJobConfig, SourcesConfig
from seqlab.data.extract import EXTRACTOR, extractor_versions
from seqlab.data.labeling import label_key, lexicon_score, read_labels_csv
from seqlab.data.splits import split_for_url
from seqlab.interrupts import Interrupted

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ["url", "stage", "error", "attempts", "status_code", "fetched_at"]
PROCESS_FAILURES = "process.parquet"


def shard_sources(sources: SourcesConfig, n: int) -> list[SourcesConfig]:
    """Split the start URLs (seeds, sitemaps, feeds) by host into at most ``n`` crawl shards; each shard
    owns its hosts' domains."""
    from urllib.parse import urlsplit

    def host(url: str) -> str:
        return (urlsplit(url).hostname or "").lower()

    hosts = sorted({host(url) for url in sources.start_urls})
    if n <= 1 or len(hosts) <= 1:
        return [sources]
    groups: list[list[str]] = [[] for _ in range(min(n, len(hosts)))]
    for i, name in enumerate(hosts):
        groups[i % len(groups)].append(name)
    shards = []
    for group in groups:
        mine = {
            key: [u for u in getattr(sources, key) if host(u) in group]
            for key in ("seeds", "sitemaps", "feeds")
        }
        domains = [d for d in sources.allowed_domains if any(d == h or h.endswith("." + d) for h in group)]
        shards.append(
            sources.model_copy(
                update={**mine, "allowed_domains": domains or group, "max_pages": sources.max_pages}
            )
        )
    return shards


def crawl_shard(sources: SourcesConfig, out_dir: str, print_progress: bool = True) -> dict[str, Any]:
    """Crawl one shard into ``out_dir`` (resuming from what is on disk); runs inside a Ray task."""
    from seqlab.data.scrape import ParquetSink, crawl, load_content_hashes, load_progress, load_ranks

    done, frontier = load_progress(out_dir)
    ranks = load_ranks(out_dir) if sources.focus is not None else None  # the order a focused crawl left
    hashes = load_content_hashes(out_dir)  # so a resumed crawl still spots duplicates of earlier pages
    started = time.monotonic()
    last = [started]

    def progress(stats) -> None:
        # A line every 2 s at first, then a quarter of the time so far (at most 30 s): a short crawl shows
        # its pace, and a long one (or a slow machine) does not fill a log with counters.
        now = time.monotonic()
        if print_progress and now - last[0] >= min(30.0, max(2.0, 0.25 * (now - started))):
            last[0] = now
            print(f"[crawl] {stats}", flush=True)

    sink = ParquetSink(out_dir)
    try:
        stats = asyncio.run(
            crawl(
                sources,
                sink=sink,
                done_urls=done,
                frontier=frontier,
                progress=progress,
                content_hashes=hashes,
                ranks=ranks,
            )
        )
    finally:
        sink.close()
    result = {
        "ok": stats.ok,
        "failed_by_reason": dict(stats.failed_by_reason),
        "elapsed_s": stats.elapsed_s,
        "resumed_from": len(done),
        "unvisited": stats.unvisited,  # left in the frontier by max_pages; a re-run continues from them
    }
    if stats.threshold is not None:
        result.update(relevant=stats.relevant, harvest_rate=round(stats.harvest_rate, 4))
    return result


def process_batch(
    batch: pd.DataFrame,
    *,
    labels: dict[str, float] | None,
    normalize_switches: dict[str, Any],
    min_arabic_share: float,
    val: float,
    test: float,
) -> pd.DataFrame:
    """Raw page records -> corpus rows (``status == "ok"``) or failure rows (``status == "failed"``).

    The document URL is the page's ``final_url`` (after redirects): labels are joined and the split is
    hashed on it. Pure pandas, used by Ray Data ``map_batches`` and directly in tests.
    """
    from seqlab.data.extract import extract_batch
    from seqlab.text import normalize

    out = extract_batch(batch, min_arabic_share=min_arabic_share)
    out["url"] = out["final_url"].fillna(out["url"]) if "final_url" in out else out["url"]
    status, errors, scores, norms, splits = [], [], [], [], []
    for url, text, error in zip(out["url"], out["text"], out["extract_error"], strict=True):
        error = error if isinstance(error, str) and error else None  # pandas may hand a missing str as NaN
        norm = normalize(text, **normalize_switches) if not error else ""
        if not error and not norm.strip():
            error = "empty_text: nothing left after normalization"
        status.append("failed" if error else "ok")
        errors.append(error or "")
        key = label_key(url)
        if error:
            scores.append(None)
        elif labels is None:
            scores.append(lexicon_score(text))
        else:
            scores.append(labels.get(key))
        norms.append(norm)
        splits.append(split_for_url(key, val=val, test=test))
    out = out.assign(text_norm=norms, score=pd.array(scores, dtype="Float64"), split=splits, status=status)
    out["error"] = errors
    out["stage"] = "extract"
    return out


def _write_failures(failures: pd.DataFrame, out: str) -> None:
    data = failures.reindex(columns=FAILURE_COLUMNS).to_parquet(index=False)
    write_bytes(join(out, "failures", PROCESS_FAILURES), data)


def _as_corpus_schema(batch):
    """Ray Data infers types from pandas (``score`` as nullable Float64...): cast to the one schema."""
    return batch.select(CORPUS_COLUMNS).cast(CORPUS_SCHEMA)


class ScrapeFailed(RuntimeError):
    """The crawl ended without a corpus to write (nothing fetched, or nothing passed extraction)."""


@releases_outputs
def run_scrape(
    cfg: ScrapeJobConfig, extra_metrics: dict[str, Any] | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Crawl, then process into ``cfg.out``; returns the summary also stored in ``manifest.json``.

    ``extra_metrics`` are recorded with the scrape's own (the demo adds the generator's noise floor, which
    the tune report compares against). A re-run with the same ``cfg.out`` continues that crawl.

    Raises:
        seqlab.artifacts.OutputTaken: ``cfg.out`` holds another stage's artifact (unless ``overwrite``).
    """
    import ray

    cfg = cfg.smoke()
    if not cfg.sources.start_urls:
        raise ScrapeFailed("nothing to scrape: the sources have no seeds, sitemaps or feeds")
    focus = cfg.sources.focus
    if focus is not None and not is_uri(focus.scorer):  # Ray tasks may run elsewhere than this cwd
        focus = focus.model_copy(update={"scorer": str(resolve(focus.scorer))})
        cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"focus": focus})})
    focus_model = None
    if focus is not None:  # a bad scorer fails here, not in every crawl task
        from seqlab.data.scrape.focus import check_focus_scorer

        try:
            focus_model = check_focus_scorer(focus.scorer)
        except ValueError as exc:
            raise ScrapeFailed(str(exc)) from None
    claim_output_dir(cfg.out, "scrape", overwrite=overwrite)
    # A URI (s3://, gs://) is written through pyarrow.fs by every task, so a multi-node crawl never
    # leaves pages on one node's local disk; a local path is made absolute once, here.
    out = cfg.out if is_uri(cfg.out) else resolve(cfg.out)
    labels = read_labels_csv(cfg.labels) if cfg.labels else None
    started = time.monotonic()

    # Phase 1: crawl, sharded by host, one Ray task per shard.
    shards = shard_sources(cfg.sources, cfg.num_crawl_tasks)
    task = ray.remote(num_cpus=1)(crawl_shard)
    refs = [task.remote(shard, out) for shard in shards]
    try:
        crawl_results = ray.get(refs)
    except KeyboardInterrupt:
        # Cancelling raises KeyboardInterrupt inside each crawl task, whose sink then flushes the pages it
        # holds in memory; shutting Ray down without this would lose up to a part per shard.
        for ref in refs:
            ray.cancel(ref)
        ray.wait(refs, num_returns=len(refs), timeout=30)
        raise Interrupted(
            f"scrape interrupted; the pages fetched so far are kept in {join(out, 'raw')}"
        ) from None
    crawl_s = time.monotonic() - started

    # Phase 2: process raw pages in parallel with Ray Data.
    raw_dir = join(out, "raw")
    if not list_files(raw_dir, prefix="part-", suffix=".parquet"):
        if not list_files(join(out, "failures"), suffix=".parquet"):
            raise ScrapeFailed(
                f"the crawl tried no URL: {cfg.sources.domains or 'no domain'} had nothing to fetch"
            )
        raise ScrapeFailed(
            f"the crawl fetched no pages into {raw_dir}; see {join(out, 'failures')} (a re-run retries "
            "timeouts and server errors)"
        )
    t1 = time.monotonic()
    ds = ray.data.read_parquet(raw_dir).map_batches(
        process_batch,
        batch_format="pandas",
        fn_kwargs={
            "labels": labels,
            "normalize_switches": cfg.normalize.model_dump(),
            "min_arabic_share": cfg.sources.min_arabic_share,
            "val": cfg.split.val,
            "test": cfg.split.test,
        },
    )
    processed = ds.materialize()
    ok = processed.filter(expr="status == 'ok'").select_columns(CORPUS_COLUMNS)
    if ok.count() == 0:
        raise ScrapeFailed(
            f"no page of the crawl passed extraction; see {join(out, 'failures')} (nothing was deleted)"
        )
    with staged_dir(parquet_path(out)) as stage:  # corpus/ appears whole, or the old one stays
        ok.map_batches(_as_corpus_schema, batch_format="pyarrow").write_parquet(str(stage))
    failed = processed.filter(expr="status != 'ok'").to_pandas()
    process_s = time.monotonic() - t1

    _write_failures(failed, out)

    summary = summarize(out, crawl_s=crawl_s, process_s=process_s)
    summary["crawl_shards"] = crawl_results
    summary["unvisited"] = sum(r["unvisited"] for r in crawl_results)
    inputs = None
    if focus is not None:
        ok_pages = sum(r["ok"] for r in crawl_results)
        relevant = sum(r["relevant"] for r in crawl_results)
        summary["harvest_rate"] = round(relevant / ok_pages, 4) if ok_pages else None
        inputs = {"focus": focus_model["manifest"]} if focus_model["manifest"] else None
    summary.update(extra_metrics or {})
    write_manifest(
        out,
        stage="scrape",
        config=cfg.model_dump(mode="json"),
        metrics=summary,
        labeler="labels_csv" if labels is not None else "lexicon",
        extractor={"name": EXTRACTOR, "versions": extractor_versions()},
        normalize=cfg.normalize.model_dump(),  # the switches text_norm was made with
        labels_path=cfg.labels,
        layout={"corpus": "corpus/", "failures": "failures/", "raw": "raw/"},
        inputs=inputs,
        focus=None  # the model by the content hash of its files, and how it ranked links
        if focus is None
        else {"scorer_sha256": focus_model["sha256"], "blend": focus.blend, "threshold": focus.threshold},
    )
    return summary


def summarize(out_dir: str | Path, crawl_s: float = 0.0, process_s: float = 0.0) -> dict[str, Any]:
    """Counts of a scrape output directory (local or URI): docs by split, failures by stage/reason,
    throughput."""
    from seqlab.data.scrape import failure_reason

    corpus = read_parquet(parquet_path(out_dir), columns=["url", "split", "score"]).to_pandas()
    failures = read_failures(out_dir)
    reasons = Counter(
        f"{stage}:{failure_reason(str(err))}"
        for stage, err in zip(failures["stage"], failures["error"], strict=True)
    )
    total_s = crawl_s + process_s
    return {
        "docs": len(corpus),
        "labeled": int(corpus["score"].notna().sum()),
        "split_sizes": {k: int(v) for k, v in corpus["split"].value_counts().items()},
        "failed": len(failures),
        "failed_by_reason": dict(sorted(reasons.items())),
        "crawl_s": round(crawl_s, 2),
        "process_s": round(process_s, 2),
        "docs_per_s": round(len(corpus) / total_s, 2) if total_s else None,
    }


def read_failures(out_dir: str | Path) -> pd.DataFrame:
    """All failure rows of a scrape directory (crawl parts and processing), one per URL.

    A URL that failed transiently and was fetched again by a later run keeps only its newest crawl record,
    and none at all once a page of it is stored: it is then a page (or a processing failure), not a failure.
    """
    folder = join(str(out_dir), "failures")
    crawl_parts = list_files(folder, prefix="part-", suffix=".parquet")
    other = [p for p in list_files(folder, suffix=".parquet") if p not in crawl_parts]
    frames = [read_parquet(p).to_pandas() for p in other]
    if crawl_parts:
        crawl = pd.concat([read_parquet(p).to_pandas() for p in crawl_parts], ignore_index=True)
        crawl = crawl.sort_values("fetched_at", kind="stable").drop_duplicates("url", keep="last")
        raw = list_files(join(str(out_dir), "raw"), prefix="part-", suffix=".parquet")
        fetched = {u for p in raw for u in read_parquet(p, columns=["url"]).column("url").to_pylist()}
        frames.insert(0, crawl[~crawl["url"].isin(fetched)])
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def format_summary(summary: dict[str, Any]) -> str:
    """A few readable lines for the end of a run."""
    lines = [
        f"docs: {summary['docs']} ({summary['labeled']} labeled) split {summary['split_sizes']}",
        f"failed: {summary['failed']}",
    ]
    lines += [f"  {reason}: {n}" for reason, n in summary["failed_by_reason"].items()]
    if summary.get("unvisited"):
        lines.append(f"budget: max_pages reached, {summary['unvisited']} queued URLs left for a re-run")
    if summary.get("harvest_rate") is not None:
        lines.append(
            f"focus: harvest rate {summary['harvest_rate']:.2f} (pages the scorer rates >= threshold)"
        )
    lines.append(
        f"time: crawl {summary['crawl_s']} s, process {summary['process_s']} s, {summary['docs_per_s']} docs/s"
    )
    return "\n".join(lines)
