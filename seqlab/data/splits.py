"""The split rule: which of train/val/test a document belongs to, from its URL alone.

One rule for every corpus the project makes (a scrape, the generated corpus), so the same page lands in
the same split whichever run or machine produced it, and a re-scrape never leaks test pages into train.
Pure Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from seqlab.corpus import SPLITS
from seqlab.data.labeling import label_key

__all__ = ["SPLITS", "split_for_url", "split_sizes"]


def split_for_url(url: str, val: float = 0.1, test: float = 0.1) -> str:
    """``"train"``, ``"val"`` or ``"test"`` from a stable hash of the normalized URL.

    ``h = int(sha1(label_key(url))[:8], 16) / 2**32``; ``h < test`` -> test, ``h < test + val`` ->
    val, else train. The same page always lands in the same split, whichever run or machine scraped it.
    """
    if val < 0 or test < 0 or val + test > 1:
        raise ValueError(f"split fractions must be >= 0 and sum to <= 1, got val={val}, test={test}")
    digest = hashlib.sha1(label_key(url).encode("utf-8")).hexdigest()
    h = int(digest[:8], 16) / 2**32
    if h < test:
        return "test"
    if h < test + val:
        return "val"
    return "train"


def split_sizes(splits: Sequence[str]) -> dict[str, int]:
    """Counts of ``train``/``val``/``test`` (all three keys present)."""
    sizes = dict.fromkeys(SPLITS, 0)
    for s in splits:
        sizes[s] += 1
    return sizes
