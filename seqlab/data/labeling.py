"""Relevance labels for scraped pages: the user's manual scores, or a documented weak labeler.

Manual labels come as a CSV with columns ``url,score`` (0–10), the form in which users bring their own
judgements (``data/labels.csv`` is the bundled site's). URLs are joined on :func:`label_key` (the crawler's canonical
URL), so ``HTTP://Host:80/a#x`` and ``http://host/a`` match.

The weak labeler, used when no labels are given (the manifest then records ``labeler: "lexicon"``):

    sentences s_0..s_{n-1} of the page text (split on . ! ? ؟ and newlines)
    hit_i  = min(1, (# tokens of s_i whose stem is in the technology lexicon) / 2)
    w_i    = 1 / (1 + i) ** 0.7                      # lead sentences weigh more
    score  = round(10 * sum(w_i * hit_i) / sum(w_i), 1)

It is a transparent heuristic, not a model: good enough to bootstrap a scorer on unlabeled pages, and
always replaceable by manual labels.
"""

from __future__ import annotations

import csv
import math
import re
from functools import lru_cache
from pathlib import Path

from seqlab.data.urls import normalize_url

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
DEFAULT_LEXICON = DATA_DIR / "lexicon" / "technology.txt"
_SENTENCE_SPLIT = re.compile(r"[.!?؟\n]+")


def label_key(url: str) -> str:
    """The key labels are joined (and splits hashed) on: the crawler's canonical URL form."""
    return normalize_url(url) or url.strip()


def read_labels_csv(path: str | Path) -> dict[str, float]:
    """Read ``url,score`` rows into {normalized url: score}.

    Raises:
        ValueError: naming the file and line of a missing column, an unparsable or out-of-range score.
    """
    labels: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"url", "score"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: labels CSV needs columns url,score; missing {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                score = float(row["score"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: score {row['score']!r} is not a number") from None
            if not (0.0 <= score <= 10.0) or math.isnan(score):
                raise ValueError(f"{path}:{line}: score {score} is outside 0–10")
            labels[label_key(row["url"])] = score
    return labels


@lru_cache(maxsize=4)
def load_lexicon(path: str | Path = DEFAULT_LEXICON) -> frozenset[str]:
    """The lexicon's terms, preprocessed (normalized + stemmed) exactly like page text."""
    from seqlab.text import preprocess

    terms: set[str] = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            terms.update(preprocess(line, remove_stopwords=False))
    return frozenset(terms)


def lexicon_score(text: str, lexicon: frozenset[str] | None = None) -> float:
    """Weak relevance score 0–10 of ``text`` (formula in the module docstring)."""
    from seqlab.text import preprocess

    lexicon = load_lexicon() if lexicon is None else lexicon
    sentences = [s for s in _SENTENCE_SPLIT.split(text) if s.strip()]
    if not sentences:
        return 0.0
    num = den = 0.0
    for i, sentence in enumerate(sentences):
        tokens = preprocess(sentence, remove_stopwords=False)
        hit = min(1.0, sum(t in lexicon for t in tokens) / 2)
        w = 1.0 / (1 + i) ** 0.7
        num += w * hit
        den += w
    return round(10.0 * num / den, 1)
