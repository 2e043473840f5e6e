"""`ray job submit` against a real local Ray cluster (head started with `ray start`), as users run stages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from seqlab.artifacts import read_manifest
from seqlab.synth.corpus import generate_documents
from seqlab.synth.site import LocalSite

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_scrape_job_via_ray_job_submit(ray_head, tmp_path):
    docs = generate_documents(25, seed=5)
    out = tmp_path / "scrape"
    with LocalSite(docs, port=0, faults=False, seed=5) as site:
        done = ray_head.submit(
            [
                "python",
                "jobs/scrape.py",
                "--config",
                "jobs/scrape.yaml",
                f"--sources.seeds=[{site.index_url}]",
                f"--out={out}",
                "--labels=null",
                "--sources.max_pages=20",
            ],
            cwd=ROOT,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in (done.stdout + done.stderr)
    corpus = pd.read_parquet(out / "corpus")
    assert 0 < len(corpus) <= 20
    assert read_manifest(out)["labeler"] == "lexicon"
