"""Fault injection on a real ``seqlab scrape`` process: stopped with SIGTERM mid-crawl (what ``kill PID`` and
``ray job stop`` send), it exits 143 with one line and keeps every page it fetched; the re-run fetches only
what is missing and ends with the corpus an uninterrupted crawl makes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from seqlab.data.config import ScrapeJobConfig, SourcesConfig
from seqlab.data.corpus import generate_documents
from seqlab.data.labeling import label_key
from seqlab.data.pipeline import run_scrape
from seqlab.data.site import LocalSite

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _pages(out: Path) -> list[str]:
    parts = sorted((out / "raw").glob("part-*.parquet"))
    return [u for p in parts for u in pd.read_parquet(p, columns=["url"])["url"]]


def test_sigterm_mid_crawl_keeps_what_was_fetched_and_the_rerun_completes(ray_session, tmp_path):
    out = tmp_path / "out"
    flags = ["--sources.per_host_concurrency=2", "--sources.delay_s=0", "--labels", "none"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, not the tests'
    with LocalSite(generate_documents(60, seed=5), port=0, faults=False, latency_s=0.2) as site:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seqlab", "scrape", site.index_url, "--out", str(out), *flags],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while sum(site.hits.values()) < 20 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proc.poll() is None, "the crawl ended before it could be interrupted"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 143, err[-2000:]
        assert "seqlab scrape: scrape interrupted" in err and "resume" in err
        assert "Traceback" not in err and "SIGTERM received" not in err  # no Ray C++ signal dump
        kept = _pages(out)
        assert len(kept) >= 10, "pages fetched before SIGTERM were lost instead of flushed"
        assert not (out / "corpus").exists() and not (out / "manifest.json").exists()

        site.reset()
        sources = SourcesConfig.from_urls([site.index_url], per_host_concurrency=2, delay_s=0.0)
        run_scrape(ScrapeJobConfig(sources=sources, out=str(out), labels=None))
        refetched = {u for u, n in site.hits.items() if n and not u.endswith("/robots.txt")}
        assert not refetched & set(kept), "the re-run fetched again pages it already had"
        pages = _pages(out)
        assert len(pages) == len(set(pages))  # no page stored twice across the two runs
        corpus = pd.read_parquet(out / "corpus")
        expected = {label_key(u) for u, outcome in site.expected.items() if outcome == "ok"}
        assert {label_key(u) for u in corpus["url"]} == expected
