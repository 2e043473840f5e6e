"""seqlab.models: the recurrent relevance scorer (architecture, tokenizer, saved artifact). No Ray here.

Example::

    from seqlab.models import load_scorer

    scorer = load_scorer("runs/tune/best")
    scorer.predict(["نص عربي عن الذكاء الاصطناعي"])  # -> [7.9]
"""

from seqlab.models.rnn import CELLS, POOLINGS, RNNConfig, RNNRegressor, architecture_name
from seqlab.models.scorer import Scorer, load_scorer, save_scorer
from seqlab.models.tokenizer import TokenizerConfig, encode_texts, load_tokenizer, train_tokenizer

__all__ = [
    "CELLS",
    "POOLINGS",
    "RNNConfig",
    "RNNRegressor",
    "Scorer",
    "TokenizerConfig",
    "architecture_name",
    "encode_texts",
    "load_scorer",
    "load_tokenizer",
    "save_scorer",
    "train_tokenizer",
]
