"""Arabic text: character-level normalization, tokens (stop words, stemming), their switches.

Pure core: imports neither Ray nor torch. ``normalize`` is ``str -> str``; ``preprocess`` is
``str -> list[str]``; ``normalize_batch`` is the pandas / Arrow / Ray Data batch form.
"""

from seqlab.text.config import NormalizeConfig
from seqlab.text.normalize import has_arabic, normalize, normalize_batch
from seqlab.text.tokenize import load_stopwords, preprocess, stem, tokenize

__all__ = [
    "NormalizeConfig",
    "has_arabic",
    "load_stopwords",
    "normalize",
    "normalize_batch",
    "preprocess",
    "stem",
    "tokenize",
]
