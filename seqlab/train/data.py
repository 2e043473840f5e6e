"""Encoded splits and the batchers that feed the regressor.

A split is stored flat (one int32 id array + offsets + float32 scores) so a whole corpus ships to Ray trials
as three numpy arrays per split, read zero-copy from the object store.

Batching: :func:`bucketed_batches` shuffles the documents, cuts them into chunks of ``chunk_batches``
batches, sorts each chunk by length and shuffles the resulting batches — documents of similar length share a
batch, so padding (and the packed RNN's per-step bookkeeping) stays small while every epoch's order differs.
:func:`random_batches` is the naive baseline (``seqlab bench train``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["EncodedCorpus", "EncodedSplit", "bucketed_batches", "collate", "random_batches"]


@dataclass
class EncodedSplit:
    """Documents of one split as token ids.

    Attributes:
        ids: (N_tokens,) int32, all documents' ids concatenated.
        offsets: (N+1,) int64; document i is ``ids[offsets[i]:offsets[i+1]]`` (length >= 1).
        scores: (N,) float32 targets in [0, 10].
    """

    ids: np.ndarray
    offsets: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if len(self.offsets) != len(self.scores) + 1:
            raise ValueError(
                f"offsets ({len(self.offsets)}) must be one longer than scores ({len(self.scores)})"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def lengths(self) -> np.ndarray:
        """(N,) int64 token counts."""
        return np.diff(self.offsets)

    def subset(self, idx: Sequence[int] | np.ndarray) -> EncodedSplit:
        """A new split holding documents ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        lens = self.lengths[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        ids = (
            np.concatenate([self.ids[self.offsets[i] : self.offsets[i + 1]] for i in idx])
            if len(idx)
            else self.ids[:0]
        )
        return EncodedSplit(ids=ids.astype(np.int32), offsets=offsets, scores=self.scores[idx].copy())


@dataclass
class EncodedCorpus:
    """Everything a training run needs: encoded splits + the tokenizer that made them.

    Attributes:
        splits: ``{"train": ..., "val": ..., "test": ...}`` (test may be absent).
        vocab_size: the tokenizer's vocabulary size (the model's embedding rows).
        tokenizer_json: the tokenizer serialized (``Tokenizer.to_str()``), to save with a model.
        tokenizer_config: how it was built (a ``TokenizerConfig`` dict).
        meta: free-form facts about the source (corpus path, manifest hash, row counts).
    """

    splits: dict[str, EncodedSplit]
    vocab_size: int
    tokenizer_json: str = ""
    tokenizer_config: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def train(self) -> EncodedSplit:
        return self.splits["train"]

    @property
    def val(self) -> EncodedSplit:
        return self.splits["val"]


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, chunk_batches: int = 50
) -> list[np.ndarray]:
    """Length-bucketed batches of document indices for one epoch.

    Args:
        lengths: (N,) document lengths.
        batch_size: documents per batch (the last batch of a chunk may be smaller).
        rng: randomness for this epoch (shuffle, chunking, batch order).
        chunk_batches: batches per sorted chunk; larger = tighter buckets, less randomness.
    """
    perm = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), chunk):
        part = perm[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Plain shuffled batches (no length grouping): the naive baseline."""
    perm = rng.permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def collate(
    split: EncodedSplit, idx: np.ndarray, pad_to: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad documents ``idx`` of ``split`` into tensors.

    Args:
        split: the encoded split.
        idx: (b,) document indices.
        pad_to: pad to this length instead of the batch's longest (the naive global-pad baseline).

    Returns:
        tokens (b, T) int64 right-padded with 0, lengths (b,) int64, targets (b,) float32.
    """
    starts = split.offsets[idx]
    lens = split.offsets[idx + 1] - starts
    T = int(lens.max()) if pad_to is None else max(pad_to, int(lens.max()))
    tokens = np.zeros((len(idx), T), dtype=np.int64)
    # Vectorized ragged copy: position j of row r takes ids[starts[r] + j] where j < lens[r].
    cols = np.arange(T)
    mask = cols[None, :] < lens[:, None]  # (b, T)
    src = (starts[:, None] + cols[None, :])[mask]
    tokens[mask] = split.ids[src]
    return (
        torch.from_numpy(tokens),
        torch.from_numpy(lens.astype(np.int64)),
        torch.from_numpy(split.scores[idx].astype(np.float32)),
    )
