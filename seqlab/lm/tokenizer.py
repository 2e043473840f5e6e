"""Tokenizers for the causal LM: train a byte-level BPE on the corpus, or load a pretrained one.

Byte-level BPE (GPT-2's scheme) covers every Arabic character, diacritic and emoji without an unknown
token, so a small vocabulary trained on the corpus is enough for the offline default model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from transformers import AutoTokenizer, GPT2TokenizerFast, PreTrainedTokenizerBase

__all__ = ["EOS_TOKEN", "load_tokenizer", "train_bpe_tokenizer"]

log = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"  # GPT-2's document separator; doubles as bos/unk/pad (packing needs no padding)


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2
) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a GPT-2 tokenizer.

    Args:
        texts: training documents (the corpus' train split).
        vocab_size: target vocabulary size including the 256 byte symbols and ``<|endoftext|>``.
        min_frequency: minimum count for a merge.

    Returns:
        A ``GPT2TokenizerFast`` whose eos/bos/unk/pad token is ``<|endoftext|>`` (id 0); it saves and
        reloads with ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        (t for t in texts if t),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN],
        show_progress=False,  # its bars are blank lines and escape codes in a log
    )
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer,  # the Rust tokenizer; the public wrapper has no accessor
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
    )
    log.info("trained byte-level BPE tokenizer: %d tokens", len(tokenizer))
    return tokenizer


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a pretrained tokenizer (hub id or local dir); GPT-2 has no pad token, so pad = eos."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
