"""A small synthetic corpus with the real corpus schema, for search tests (no dependency on seqlab.data).

Its ``text_norm`` is made with non-default switches (teh marbuta folded to heh), recorded in the manifest
as a scrape records them, so the exported scorer must apply those switches to raw text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqlab.text import normalize

# Words written for these tests: on-topic (technology) vs off-topic (daily life), plus function words.
TOPIC = ["حاسوب", "برمجة", "شبكة", "خوارزمية", "بيانات", "ذكاء", "اصطناعي", "معالج", "تطبيق", "خادم"]
OFF_TOPIC = ["مطر", "حديقة", "سوق", "طبخ", "رحلة", "بحر", "كتاب", "جبل", "شاي", "قمر"]
FILLER = ["في", "من", "على", "هذا", "كان", "مع", "عن", "إلى"]


SWITCHES = {"teh_marbuta": True}  # non-default: ة -> ه


def make_corpus(directory: Path, n_docs: int = 240, seed: int = 0, noise_sd: float = 0.5) -> Path:
    """Write ``directory/corpus/part-0.parquet`` + ``manifest.json``; score = 10 * topical share + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_docs):
        share = rng.uniform()
        n_words = int(rng.integers(6, 40))
        words = []
        for _ in range(n_words):
            r = rng.uniform()
            if r < 0.3:
                words.append(str(rng.choice(FILLER)))
            else:
                words.append(str(rng.choice(TOPIC if rng.uniform() < share else OFF_TOPIC)))
        text = " ".join(words)
        score = float(np.clip(10 * share + rng.normal(0, noise_sd), 0, 10))
        split = ["train", "train", "train", "val", "test"][i % 5]
        rows.append(
            {
                "url": f"http://127.0.0.1/doc/{i}",
                "title": f"وثيقة {i}",
                "text": text,
                "text_norm": normalize(text, **SWITCHES),
                "score": None if i % 17 == 0 else score,  # a few unlabeled rows must be skipped
                "split": split,
                "fetched_at": pd.Timestamp("2026-01-01", tz="UTC"),
                "status": 200,
            }
        )
    (directory / "corpus").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(directory / "corpus" / "part-0.parquet", index=False)
    manifest = {
        "stage": "corpus",
        "config": {"seed": seed},
        "metrics": {"noise_floor_rmse": noise_sd},
        "normalize": SWITCHES,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A 240-document labeled corpus directory."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))
