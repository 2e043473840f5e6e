"""Tiny encoded corpora for training-loop tests (no tokenizer or Parquet involved)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlab.train.data import EncodedCorpus, EncodedSplit

torch.set_num_threads(1)


def make_split(n: int, vocab: int = 20, seed: int = 0) -> EncodedSplit:
    """Documents of 3–30 random ids; the score is 10 x the share of ids below 6 (learnable)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 31, size=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = rng.integers(2, vocab, size=int(offsets[-1])).astype(np.int32)
    scores = np.array(
        [10 * np.mean(ids[offsets[i] : offsets[i + 1]] < 6) for i in range(n)], dtype=np.float32
    )
    return EncodedSplit(ids=ids, offsets=offsets, scores=scores)


@pytest.fixture
def tiny_data() -> EncodedCorpus:
    return EncodedCorpus(
        splits={
            "train": make_split(96, seed=0),
            "val": make_split(32, seed=1),
            "test": make_split(32, seed=2),
        },
        vocab_size=20,
    )
