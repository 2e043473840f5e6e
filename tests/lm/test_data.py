"""Corpus reading and block packing."""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.corpus_source import resolve_corpus_dir
from seqlab.lm.data import pack_blocks, read_split_texts, tokenize_and_pack


def test_pack_blocks_separates_documents_and_drops_the_tail():
    blocks = pack_blocks([[1, 2, 3], [4, 5], [6]], block_size=4, eos_id=0)
    # stream: 1 2 3 0 4 5 0 6 0 -> two full blocks, tail [0] dropped
    assert blocks.dtype == np.int64
    assert blocks.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6]]
    assert pack_blocks([[1, 2]], block_size=4, eos_id=None).shape == (0, 4)


def test_read_split_texts(corpus_dir):
    splits = {s: read_split_texts(str(corpus_dir), s) for s in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == 120
    assert len(splits["train"]) > len(splits["test"]) > 0
    first = {s: read_split_texts(str(corpus_dir), s, max_docs=20) for s in ("train", "val", "test")}
    assert sum(len(v) for v in first.values()) == 20
    assert all(set(first[s]) <= set(splits[s]) for s in splits)
    assert all("ال" in t for t in splits["val"])


def test_tokenize_and_pack_round_trips(corpus_dir, tokenizer):
    texts = read_split_texts(str(corpus_dir), "val")
    out = tokenize_and_pack({"text": np.array([*texts, None, "  "], dtype=object)}, tokenizer, "text", 16)
    blocks = out["input_ids"]
    assert blocks.shape[1] == 16 and len(blocks) > 0
    decoded = tokenizer.decode(blocks.reshape(-1).tolist())
    assert decoded.startswith(texts[0][:20])
    assert decoded.count(tokenizer.eos_token) >= len(texts) - 1  # documents are separated


def test_resolve_corpus_dir(tmp_path, corpus_dir):
    assert resolve_corpus_dir(str(corpus_dir)) == str(corpus_dir.resolve())
    with pytest.raises(FileNotFoundError, match="not a corpus directory"):
        resolve_corpus_dir(str(tmp_path))
