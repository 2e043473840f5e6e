"""Corpus -> token blocks: read a split of the corpus Parquet, tokenize, pack into fixed-length blocks.

Pure (no Ray): the Ray Data pipeline in :mod:`seqlab.lm.train` maps :func:`tokenize_and_pack_splits` over
batches of documents, and the driver uses the same functions for held-out evaluation.

Packing: documents are tokenized, each followed by ``<|endoftext|>``, concatenated, and cut into
``block_size`` blocks; the tail shorter than a block is dropped (per batch of documents, so at most one
partial block per batch is lost). Every block is full, so training needs no padding or attention mask.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqlab.corpus import read_corpus

__all__ = ["pack_blocks", "read_split_texts", "tokenize_and_pack", "tokenize_and_pack_splits"]

log = logging.getLogger(__name__)


def read_split_texts(
    corpus_dir: str, split: str, column: str = "text", max_docs: int | None = None
) -> list[str]:
    """Non-empty documents of one split (``train``/``val``/``test``) from the corpus Parquet.

    ``max_docs`` keeps only the corpus' first ``max_docs`` rows (all splits together) before selecting
    the split, like the Ray Data pipeline's ``limit``.
    """
    table = read_corpus(corpus_dir, [column, "split"], max_rows=max_docs)
    pairs = zip(table.column(column).to_pylist(), table.column("split").to_pylist(), strict=True)
    return [t for t, s in pairs if s == split and t and t.strip()]


def pack_blocks(token_lists: Sequence[Sequence[int]], block_size: int, eos_id: int | None) -> np.ndarray:
    """Concatenate documents (each followed by ``eos_id`` when given) and cut into full blocks.

    Returns:
        int64 array ``(num_blocks, block_size)``; the tail shorter than a block is dropped.
    """
    stream: list[int] = []
    for ids in token_lists:
        stream.extend(ids)
        if eos_id is not None:
            stream.append(eos_id)
    n = len(stream) // block_size
    return np.asarray(stream[: n * block_size], dtype=np.int64).reshape(n, block_size)  # (N, T)


def tokenize_and_pack(
    batch: dict[str, Any], tokenizer: Any, column: str, block_size: int
) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` function: a batch of documents -> ``{"input_ids": (N, block_size)}``."""
    texts = [str(t) for t in batch[column] if t is not None and str(t).strip()]
    token_lists = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    blocks = pack_blocks(token_lists, block_size, tokenizer.eos_token_id)
    return {"input_ids": blocks}


def tokenize_and_pack_splits(
    batch: dict[str, Any], tokenizer: Any, column: str, block_size: int
) -> dict[str, Any]:
    """``map_batches`` function: pack each split of a batch of documents on its own (no block mixes splits)."""
    ids, splits = [], []
    for split in ("train", "val"):
        docs = batch[column][batch["split"] == split]
        blocks = tokenize_and_pack({column: docs}, tokenizer, column, block_size)["input_ids"]
        ids.append(blocks)
        splits.extend([split] * len(blocks))
    return {"input_ids": np.concatenate(ids), "split": np.asarray(splits, dtype=object)}
