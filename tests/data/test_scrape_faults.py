"""Fault injection on a real ``seqlab scrape`` process: SIGKILL at a random point mid-crawl (it loses at most
the pages it had not flushed), then SIGTERM on the re-run (what ``kill PID`` and ``ray job stop`` send: it
exits 143 with one line and keeps every page it fetched), then a last run that fetches only what is missing
and ends with the corpus an uninterrupted crawl makes. The drivers join the session Ray, as jobs do."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from seqlab.data.config import ScrapeJobConfig, SourcesConfig
from seqlab.data.labeling import label_key
from seqlab.data.pipeline import run_scrape
from seqlab.synth.corpus import generate_documents
from seqlab.synth.site import LocalSite

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _pages(out: Path) -> list[str]:
    parts = sorted((out / "raw").glob("part-*.parquet"))
    return [u for p in parts for u in pd.read_parquet(p, columns=["url"])["url"]]


def _scrape(site: LocalSite, out: Path, ray_address: str) -> subprocess.Popen:
    flags = ["--sources.per_host_concurrency=2", "--sources.delay_s=0", "--labels", "none"]
    return subprocess.Popen(
        [sys.executable, "-m", "seqlab", "scrape", site.index_url, "--out", str(out), *flags],
        cwd=REPO,
        env={**os.environ, "RAY_ADDRESS": ray_address},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_killed_then_stopped_crawl_keeps_what_was_flushed_and_the_last_run_completes(
    ray_session, tmp_path, signal_when
):
    seed = random.randrange(10_000)
    why = f"(random kill point from seed {seed})"
    out = tmp_path / "out"
    address = ray_session.get_runtime_context().gcs_address
    with LocalSite(generate_documents(60, seed=5), port=0, faults=False, latency_s=0.2) as site:
        # 1. SIGKILL: no handler runs, unflushed pages are lost, flushed parts stay whole.
        kill_at = random.Random(seed).randint(3, 25)  # requests served before the kill
        rc, err = signal_when(
            _scrape(site, out, address),
            lambda: sum(site.hits.values()) >= kill_at,
            signal.SIGKILL,
            timeout=120,
        )
        assert rc == -signal.SIGKILL, f"{why} rc {rc}: {err[-2000:]}"
        after_kill = _pages(out) if (out / "raw").exists() else []

        # 2. SIGTERM on the re-run: exits 143 with one line, and flushes what it fetched.
        site.reset()
        rc, err = signal_when(
            _scrape(site, out, address), lambda: sum(site.hits.values()) >= 20, signal.SIGTERM, timeout=120
        )
        assert rc == 143, f"{why} {err[-2000:]}"
        assert "seqlab scrape: scrape interrupted" in err and "resume" in err
        assert "Traceback" not in err and "SIGTERM received" not in err  # no Ray C++ signal dump
        refetched = {u for u, n in site.hits.items() if n and not u.endswith("/robots.txt")}
        assert not refetched & set(after_kill), f"{why} the re-run fetched again pages it already had"
        kept = _pages(out)
        assert len(kept) >= len(after_kill) + 10, "pages fetched before SIGTERM were lost instead of flushed"
        assert not (out / "corpus").exists() and not (out / "manifest.json").exists()

        # 3. The last run completes the corpus.
        site.reset()
        sources = SourcesConfig.from_urls([site.index_url], per_host_concurrency=2, delay_s=0.0)
        run_scrape(ScrapeJobConfig(sources=sources, out=str(out), labels=None))
        refetched = {u for u, n in site.hits.items() if n and not u.endswith("/robots.txt")}
        assert not refetched & set(kept), f"{why} the last run fetched again pages it already had"
        pages = _pages(out)
        assert len(pages) == len(set(pages)), why  # no page stored twice across the three runs
        corpus = pd.read_parquet(out / "corpus")
        expected = {label_key(u) for u, outcome in site.expected.items() if outcome == "ok"}
        assert {label_key(u) for u in corpus["url"]} == expected, why
