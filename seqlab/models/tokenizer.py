"""The scorer's vocabulary: a Hugging Face ``tokenizers`` model trained on the training split.

Word-level (whitespace/punctuation split, the seed's Keras ``Tokenizer`` equivalent) by default, or a small
BPE / WordPiece model whose sub-words help with Arabic's rich morphology. Id 0 is always ``[PAD]`` and id 1
``[UNK]``, so the model's ``padding_idx`` is fixed. The tokenizer is saved as ``tokenizer.json`` next to
the model weights and carries its truncation length.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from seqlab.config import Config

__all__ = ["PAD", "UNK", "TokenizerConfig", "encode_texts", "load_tokenizer", "train_tokenizer"]

PAD, UNK = "[PAD]", "[UNK]"  # ids 0 and 1


class TokenizerConfig(Config):
    """How the scorer's vocabulary is built."""

    kind: Literal["wordlevel", "bpe", "wordpiece"] = Field(
        "wordlevel", description="wordlevel (whole words), or bpe / wordpiece sub-words"
    )
    vocab_size: int = Field(30000, ge=16, description="largest vocabulary, special tokens included")
    min_frequency: int = Field(2, ge=1, description="a word (or merge) must occur this often in train")
    max_len: int = Field(256, ge=1, description="tokens kept per document (the rest is truncated)")


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig | None = None) -> Tokenizer:
    """Train a tokenizer on ``texts`` (the training split's normalized text).

    Returns:
        A ``tokenizers.Tokenizer`` with ``[PAD]``=0, ``[UNK]``=1 and truncation at ``cfg.max_len``.
    """
    cfg = cfg or TokenizerConfig()
    special = [PAD, UNK]
    if cfg.kind == "wordlevel":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        trainer = trainers.WordLevelTrainer(
            vocab_size=cfg.vocab_size,
            min_frequency=cfg.min_frequency,
            special_tokens=special,
            show_progress=False,
        )
    elif cfg.kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK))
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.vocab_size,
            min_frequency=cfg.min_frequency,
            special_tokens=special,
            show_progress=False,
        )
        tok.decoder = decoders.BPEDecoder()
    else:
        tok = Tokenizer(models.WordPiece(unk_token=UNK))
        trainer = trainers.WordPieceTrainer(
            vocab_size=cfg.vocab_size,
            min_frequency=cfg.min_frequency,
            special_tokens=special,
            show_progress=False,
        )
        tok.decoder = decoders.WordPiece()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.token_to_id(PAD) != 0 or tok.token_to_id(UNK) != 1:
        raise RuntimeError("tokenizer special tokens must be [PAD]=0, [UNK]=1")
    tok.enable_truncation(max_length=cfg.max_len)
    return tok


def load_tokenizer(path_or_json: str) -> Tokenizer:
    """Load a tokenizer from a ``tokenizer.json`` path or its JSON string."""
    if path_or_json.lstrip().startswith("{"):
        return Tokenizer.from_str(path_or_json)
    return Tokenizer.from_file(path_or_json)


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode texts into one flat id array plus offsets (compact to ship to Ray trials).

    An empty document becomes a single ``[UNK]`` so every sequence has length >= 1 (packing needs it).

    Returns:
        ``ids`` (N_tokens,) int32 and ``offsets`` (N+1,) int64; document i is ``ids[offsets[i]:offsets[i+1]]``.
    """
    encodings = tokenizer.encode_batch(list(texts))
    seqs = [e.ids if e.ids else [1] for e in encodings]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((i for s in seqs for i in s), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets
