"""seqlab.models: the recurrent relevance scorer (architecture, tokenizer, saved artifact). No Ray here.

Example::

    from seqlab.models import load_scorer

    scorer = load_scorer("runs/tune/best")
    scorer.predict(["نص عربي عن الذكاء الاصطناعي"])  # -> [7.9]

The names below are imported on first use, so ``seqlab.models.config`` and ``seqlab.models.tokenizer``
load without PyTorch (config modules import them).
"""

from __future__ import annotations

from seqlab.lazy import lazy_exports

_SOURCES = {
    "CELLS": "config",
    "POOLINGS": "config",
    "RNNConfig": "config",
    "architecture_name": "config",
    "RNNRegressor": "rnn",
    "Scorer": "scorer",
    "load_scorer": "scorer",
    "save_scorer": "scorer",
    "TokenizerConfig": "tokenizer",
    "encode_texts": "tokenizer",
    "load_tokenizer": "tokenizer",
    "train_tokenizer": "tokenizer",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _SOURCES)
