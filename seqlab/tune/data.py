"""Read a Parquet corpus, keep its labeled rows, and encode them for training.

A corpus directory holds ``corpus/`` (a Parquet dataset with ``text_norm``, ``score`` 0–10 or null,
``split`` in train/val/test, ...) and ``manifest.json``. Rows with a null score are unlabeled and skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from seqlab import artifacts
from seqlab.corpus import SPLITS, read_corpus
from seqlab.corpus_source import resolve_corpus_dir
from seqlab.models.tokenizer import TokenizerConfig, encode_texts, load_tokenizer, train_tokenizer
from seqlab.train.data import EncodedCorpus, EncodedSplit

__all__ = ["CorpusData", "encode_frames", "load_corpus", "prepare_data"]

log = logging.getLogger(__name__)

MIN_SPLIT_ROWS = 2  # train: TF-IDF's min_df=2 needs two documents; val: R² and model choice need two rows


@dataclass
class CorpusData:
    """A loaded corpus: labeled rows per split, its manifest, and the encoded form for training."""

    frames: dict[str, pd.DataFrame]
    manifest: dict[str, Any]
    encoded: EncodedCorpus

    @property
    def noise_floor_rmse(self) -> float | None:
        """The generator's label-noise RMSE (the best any model can do), when the corpus knows it."""
        value = (self.manifest.get("metrics") or {}).get("noise_floor_rmse")
        return float(value) if value is not None else None


def load_corpus(
    path: str, text_column: str = "text_norm", max_docs: int | None = None, seed: int = 0
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Labeled rows of the corpus at ``path``, per split, plus its manifest.

    Args:
        path: corpus directory (local or URI) with ``corpus/`` and ``manifest.json``.
        text_column: the text the model reads.
        max_docs: keep at most this many labeled rows (uniform, seeded; splits keep their proportions).
        seed: seed of that subsample.

    Raises:
        ValueError: a score that is not a finite number in 0–10 (naming the row), a train or val split
            with fewer than :data:`MIN_SPLIT_ROWS` labeled rows (saying whether the split is empty or
            unlabeled), or scores without variance.
    """
    table = read_corpus(path, [text_column, "score", "split"], optional=["url"])
    df = table.to_pandas()
    check_scores(df, path)
    labeled = df[df["score"].notna()].reset_index(drop=True)
    labeled = labeled.assign(
        score=labeled["score"].astype("float32"),
        split=labeled["split"].astype(str),
        text=labeled[text_column].fillna("").astype(str),
    )
    if max_docs is not None and len(labeled) > max_docs:
        labeled = labeled.sample(n=max_docs, random_state=seed).reset_index(drop=True)
    frames = {s: labeled[labeled["split"] == s].reset_index(drop=True) for s in SPLITS}
    for s in ("train", "val"):
        if len(frames[s]) >= MIN_SPLIT_ROWS:
            continue
        rows = int((df["split"] == s).sum())
        if not rows:
            why = f"has no {s!r} rows at all (its splits: {df['split'].value_counts().to_dict()})"
        elif frames[s].empty:
            why = (
                f"has no labeled {s!r} rows (score is empty in all {rows}): scrape it with --labels FILE, "
                "or without labels to get the lexicon's weak labels"
            )
        elif rows == len(frames[s]):
            why = f"has {rows} {s!r} row(s); a search needs at least {MIN_SPLIT_ROWS}"
        else:
            why = (
                f"has {len(frames[s])} labeled {s!r} row(s) of {rows} (the others' score is empty); a search "
                f"needs at least {MIN_SPLIT_ROWS}: scrape it with --labels FILE, or without labels to get "
                "the lexicon's weak labels"
            )
        raise ValueError(f"corpus at {path} {why}")
    if labeled["score"].nunique() < 2:
        raise ValueError(
            f"corpus at {path}: column 'score' has no variance (every labeled row scores "
            f"{labeled['score'].iloc[0]:g}): a scorer has nothing to learn from it"
        )
    try:
        manifest = artifacts.read_manifest(path)
    except FileNotFoundError:
        log.warning("corpus at %s has no manifest.json; its hash will be missing from outputs", path)
        manifest = {"path": str(path)}
    log.info(
        "corpus %s: %d rows, labeled train/val/test = %s",
        path,
        len(df),
        "/".join(str(len(frames[s])) for s in SPLITS),
    )
    return frames, manifest


def check_scores(df: pd.DataFrame, path: str) -> None:
    """ValueError naming the first row whose score is not a finite number in 0–10 (null is fine: unlabeled)."""
    scores = df["score"].astype("float64")
    bad = scores.notna() & ~scores.between(0.0, 10.0)  # NaN, ±inf and out-of-range alike
    if bad.any():
        row = int(bad.idxmax())
        where = f"row {row}" + (f" ({df['url'].iloc[row]})" if "url" in df else "")
        raise ValueError(
            f"corpus at {path}: {where} has score {float(scores.iloc[row])!r}; scores are finite numbers in 0–10 "
            "(or null for unlabeled rows)"
        )


def encode_frames(
    frames: dict[str, pd.DataFrame], tokenizer_cfg: TokenizerConfig, tokenizer_json: str | None = None
) -> EncodedCorpus:
    """Train the tokenizer on the train split's text (or reuse ``tokenizer_json``) and encode every split."""
    if tokenizer_json:
        tokenizer = load_tokenizer(tokenizer_json)
    else:
        tokenizer = train_tokenizer(frames["train"]["text"].tolist(), tokenizer_cfg)
    splits = {}
    for name, frame in frames.items():
        ids, offsets = encode_texts(tokenizer, frame["text"].tolist())
        splits[name] = EncodedSplit(ids=ids, offsets=offsets, scores=frame["score"].to_numpy(np.float32))
    return EncodedCorpus(
        splits=splits,
        vocab_size=tokenizer.get_vocab_size(),
        tokenizer_json=tokenizer.to_str(),
        tokenizer_config=tokenizer_cfg.model_dump(mode="json"),
        meta={"rows": {k: len(v) for k, v in frames.items()}},
    )


def prepare_data(
    path: str | None,
    tokenizer_cfg: TokenizerConfig,
    text_column: str = "text_norm",
    max_docs: int | None = None,
    seed: int = 0,
    tokenizer_json: str | None = None,
) -> CorpusData:
    """Load the corpus at ``path`` (None = bundled) and encode it; the driver does this once per search.

    ``tokenizer_json`` reuses a saved tokenizer instead of training one (a resumed search must encode
    exactly as its checkpoints were trained).
    """
    path = resolve_corpus_dir(path)
    frames, manifest = load_corpus(path, text_column, max_docs, seed)
    encoded = encode_frames(frames, tokenizer_cfg, tokenizer_json)
    encoded.meta.update({"corpus": str(path), "corpus_hash": artifacts.manifest_hash(manifest)})
    return CorpusData(frames=frames, manifest=manifest, encoded=encoded)
