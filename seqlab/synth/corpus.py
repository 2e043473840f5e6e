"""The bundled corpus generator: a sentence bank -> documents whose relevance score is known.

The sentence bank (``data/sentences/<theme>.txt``) holds authored Arabic sentences by theme; the theme
``technology`` is the topic a scorer learns to recognise, every other theme is off-topic. A document is
3–15 sentences whose on-topic share is drawn over the whole range, so scores cover 0–10.

Relevance (the "clean" score a perfect reader would give), for sentences ``s_0..s_{n-1}`` with flags
``on_i`` (1 when ``s_i`` is on-topic) and a title flag ``t``::

    w_i   = 1 / (1 + i) ** 0.7                        # lead sentences weigh more (order matters)
    w_t   = 1.0                                        # the title weighs as much as the lead sentence
    clean = 10 * (w_t * t + sum_i w_i * on_i) / (w_t + sum_i w_i)         # in [0, 10]

Titles are the first words of the lead sentence, so ``t == on_0`` and everything the score depends on is
visible in ``text``: an RNN can learn it. The human-like label adds Gaussian noise and rounds like a person
would::

    score = round(clip(clean + N(0, noise_sd), 0, 10), 1)

:func:`noise_floor_rmse` is RMSE(clean, score): the error of a scorer that recovers ``clean`` exactly.

Everything here is pure Python + numpy/pandas (no Ray, no torch); :func:`materialize_corpus` writes the
corpus in the layout a scrape produces (``corpus/`` Parquet + ``manifest.json``).
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import logging
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import seqlab
from seqlab.artifacts import atomic_output, releases_outputs
from seqlab.data.splits import split_for_url, split_sizes

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# --- defaults, in one place -------------------------------------------------------------------------
DEFAULT_SENTENCE_DIR = Path(seqlab.__file__).resolve().parents[1] / "data" / "sentences"
DEFAULT_BASE_URL = "http://127.0.0.1:8765"  # the local site's default address (seqlab site --port 8765)
ON_TOPIC_THEME = "technology"  # the theme a scorer learns; every other theme is off-topic
DEFAULT_N_DOCS = 3000
DEFAULT_SEED = 0
DEFAULT_NOISE_SD = 0.5  # label noise: a careful human rater is off by about half a point
MIN_SENTENCES, MAX_SENTENCES = 3, 15
POSITION_DECAY = 0.7  # w_i = 1 / (1 + i) ** POSITION_DECAY
TITLE_WEIGHT = 1.0  # the title counts as much as the lead sentence
# How the on-topic probability p of a document is drawn: mass at both ends (pure off/on-topic pages,
# common on the real web) plus a uniform middle so every score range is populated.
P_ALL_OFF, P_ALL_ON = 0.10, 0.08
MAIN_OFF_THEME_SHARE = 0.8  # an off-topic sentence comes from the document's main off-topic theme
TITLE_WORDS = (4, 9)  # a title keeps 4..8 leading words of the lead sentence
FETCHED_AT = _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc)  # fixed, so the corpus is reproducible
GENERATOR_VERSION = 1  # bump when the generation procedure changes (invalidates cached corpora)
_TITLE_STRIP = " .،,؛;:!?؟…«»\"'()-–—"


@dataclass(frozen=True)
class Document:
    """One generated article.

    Attributes:
        doc_id: stable id, ``d`` + 6-digit index (``d000123``).
        slug: URL slug, ``<theme>-<index>`` (unique; used by :func:`article_url`).
        theme: the dominant theme (largest position-weighted share of the sentences).
        title: the first words of the lead sentence.
        sentences: the body, in order.
        on_topic: per sentence, whether it comes from the on-topic theme.
        clean_score: :func:`relevance` of the flags, in [0, 10].
        score: the noisy, clipped, rounded label a human would give, in [0, 10].
    """

    doc_id: str
    slug: str
    theme: str
    title: str
    sentences: tuple[str, ...]
    on_topic: tuple[bool, ...]
    clean_score: float
    score: float

    @property
    def text(self) -> str:
        """The body as one string (sentences joined by a space)."""
        return " ".join(self.sentences)

    @property
    def title_on_topic(self) -> bool:
        """Whether the title is on-topic (titles come from the lead sentence)."""
        return bool(self.on_topic and self.on_topic[0])


def load_sentence_bank(directory: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
    """Read the sentence bank: one ``<theme>.txt`` per theme, one sentence per line.

    Lines starting with ``#`` and blank lines are ignored; surrounding whitespace is stripped.

    Args:
        directory: folder of ``*.txt`` files (default: ``data/sentences`` of the repository).

    Returns:
        theme (file stem) -> sentences, themes sorted by name.

    Raises:
        FileNotFoundError: the directory is missing or holds no ``*.txt`` file.
        ValueError: the on-topic theme or any off-topic theme is missing, or a file has no sentence.
    """
    path = Path(directory) if directory is not None else DEFAULT_SENTENCE_DIR
    if not path.is_dir():
        raise FileNotFoundError(
            f"sentence bank directory {path} not found; pass the folder of <theme>.txt files "
            "(one sentence per line) or run from a checkout that has data/sentences/"
        )
    files = sorted(path.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"sentence bank directory {path} holds no <theme>.txt file")
    bank: dict[str, list[str]] = {}
    for file in files:
        lines = file.read_text(encoding="utf-8").splitlines()
        sentences = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
        if not sentences:
            raise ValueError(f"sentence bank file {file} holds no sentence")
        bank[file.stem] = sentences
    _check_bank(bank)
    return bank


def _check_bank(bank: dict[str, list[str]]) -> None:
    if ON_TOPIC_THEME not in bank:
        raise ValueError(f"sentence bank has no {ON_TOPIC_THEME!r} theme; themes: {sorted(bank)}")
    if len(bank) < 2:
        raise ValueError("sentence bank needs at least one off-topic theme besides the on-topic one")


def bank_hash(bank: dict[str, list[str]]) -> str:
    """Short stable hash of a sentence bank's content (names the cached corpus)."""
    digest = hashlib.sha256()
    for theme in sorted(bank):
        digest.update(theme.encode("utf-8") + b"\0")
        for sentence in bank[theme]:
            digest.update(sentence.encode("utf-8") + b"\n")
    return digest.hexdigest()[:12]


def position_weights(n: int) -> np.ndarray:
    """``w_i = 1 / (1 + i) ** 0.7`` for ``i = 0..n-1``: lead sentences weigh more."""
    return 1.0 / (1.0 + np.arange(n)) ** POSITION_DECAY


def relevance(on_topic_flags: Sequence[bool], title_on_topic: bool) -> float:
    """The clean relevance score in [0, 10] of a document (see the module docstring for the formula).

    ``clean = 10 * (w_t * t + sum_i w_i * on_i) / (w_t + sum_i w_i)``, ``w_i = 1 / (1 + i) ** 0.7``,
    ``w_t = 1``. It depends on the order of the sentences: an on-topic lead scores higher than the same
    on-topic sentence at the end.

    Args:
        on_topic_flags: per sentence, in order, whether it is on-topic (at least one sentence).
        title_on_topic: whether the title is on-topic.
    """
    flags = np.asarray(on_topic_flags, dtype=float)
    if flags.ndim != 1 or flags.size == 0:
        raise ValueError("relevance needs a non-empty sequence of per-sentence flags")
    weights = position_weights(flags.size)
    total = TITLE_WEIGHT * float(title_on_topic) + float(weights @ flags)
    clean = 10.0 * total / (TITLE_WEIGHT + float(weights.sum()))
    return min(10.0, max(0.0, clean))  # exact bounds despite float rounding


def human_label(clean: float, noise: float) -> float:
    """``round(clip(clean + noise, 0, 10), 1)``: the label a human rater writes down."""
    return round(min(10.0, max(0.0, clean + noise)), 1)


def _make_title(sentence: str, n_words: int) -> str:
    words = sentence.split()
    return " ".join(words[:n_words]).strip(_TITLE_STRIP) or sentence.strip(_TITLE_STRIP)


def _pick(rng: np.random.Generator, pool: list[str], k: int) -> list[str]:
    """``k`` sentences from ``pool``, without repeats when the pool is large enough."""
    if k == 0:
        return []
    idx = rng.choice(len(pool), size=k, replace=k > len(pool))
    return [pool[i] for i in idx]


def _generate_one(i: int, seed: int, bank: dict[str, list[str]], off_themes: list[str], noise_sd: float):
    # One generator per document: document i is the same whatever n_docs is, and the structure draws
    # come before the noise draw, so changing noise_sd changes scores only.
    rng = np.random.default_rng([seed, i])
    n = int(rng.integers(MIN_SENTENCES, MAX_SENTENCES + 1))
    u = rng.random()
    p = 0.0 if u < P_ALL_OFF else 1.0 if u < P_ALL_OFF + P_ALL_ON else float(rng.random())
    on = rng.random(n) < p
    main_off = off_themes[int(rng.integers(len(off_themes)))]
    themes = [
        ON_TOPIC_THEME
        if is_on
        else (
            main_off
            if rng.random() < MAIN_OFF_THEME_SHARE
            else off_themes[int(rng.integers(len(off_themes)))]
        )
        for is_on in on
    ]
    # Draw each theme's sentences together so a document never repeats a sentence.
    drawn = {t: iter(_pick(rng, bank[t], themes.count(t))) for t in dict.fromkeys(themes)}
    sentences = tuple(next(drawn[t]) for t in themes)
    title = _make_title(sentences[0], int(rng.integers(*TITLE_WORDS)))
    z = float(rng.standard_normal())

    weights = position_weights(n)
    share: dict[str, float] = {}
    for t, w in zip(themes, weights, strict=True):
        share[t] = share.get(t, 0.0) + float(w)
    theme = max(sorted(share), key=lambda t: share[t])
    flags = tuple(bool(x) for x in on)
    clean = relevance(flags, title_on_topic=flags[0])
    doc_id = f"d{i:06d}"
    return Document(
        doc_id=doc_id,
        slug=f"{theme}-{i:06d}",
        theme=theme,
        title=title,
        sentences=sentences,
        on_topic=flags,
        clean_score=clean,
        score=human_label(clean, noise_sd * z),
    )


def generate_documents(
    n_docs: int,
    seed: int = DEFAULT_SEED,
    *,
    bank: dict[str, list[str]] | None = None,
    noise_sd: float = DEFAULT_NOISE_SD,
) -> list[Document]:
    """Generate ``n_docs`` labeled documents, deterministically for ``seed``.

    Each document has 3–15 sentences. Its on-topic probability ``p`` is 0 (10 %), 1 (8 %) or uniform on
    [0, 1]; each sentence is on-topic with probability ``p``; off-topic sentences come mostly from one
    off-topic theme. Document ``i`` depends only on ``(seed, i)``, so a smaller set is a prefix of a larger.

    Args:
        n_docs: how many documents.
        seed: the random seed (no global random state is touched).
        bank: theme -> sentences (default: :func:`load_sentence_bank`).
        noise_sd: standard deviation of the Gaussian label noise (0 gives score == rounded clean score).
    """
    if n_docs < 0:
        raise ValueError(f"n_docs must be >= 0, got {n_docs}")
    if noise_sd < 0:
        raise ValueError(f"noise_sd must be >= 0, got {noise_sd}")
    bank = load_sentence_bank() if bank is None else bank
    _check_bank(bank)
    off_themes = sorted(t for t in bank if t != ON_TOPIC_THEME)
    return [_generate_one(i, seed, bank, off_themes, noise_sd) for i in range(n_docs)]


def noise_floor_rmse(docs: Sequence[Document]) -> float:
    """RMSE between the clean and the labeled scores: what a scorer that recovers ``clean`` exactly gets.

    About ``noise_sd`` (a little less, because clipping at 0 and 10 shrinks the noise of extreme docs).
    """
    if not docs:
        return float("nan")
    err = np.array([d.clean_score - d.score for d in docs])
    return float(math.sqrt(float(np.mean(err**2))))


def article_url(doc: Document, base_url: str = DEFAULT_BASE_URL) -> str:
    """The canonical URL of ``doc`` on a site rooted at ``base_url`` (also used by the local site)."""
    return f"{base_url.rstrip('/')}/articles/{doc.slug}.html"


def documents_frame(docs: Sequence[Document], base_url: str = DEFAULT_BASE_URL) -> pd.DataFrame:
    """A DataFrame with columns ``url, title, text, score, clean_score, theme`` (one row per doc)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "url": [article_url(d, base_url) for d in docs],
            "title": [d.title for d in docs],
            "text": [d.text for d in docs],
            "score": np.array([d.score for d in docs], dtype=float),
            "clean_score": np.array([d.clean_score for d in docs], dtype=float),
            "theme": [d.theme for d in docs],
        }
    )


def write_labels_csv(
    docs: Sequence[Document], path: str | os.PathLike[str], base_url: str = DEFAULT_BASE_URL
) -> str:
    """Write ``url,score`` rows (score with one decimal) for ``docs`` served at ``base_url``."""
    with atomic_output(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["url", "score"])
        for d in docs:
            writer.writerow([article_url(d, base_url), f"{d.score:.1f}"])
    return str(path)


def _normalizer_fingerprint() -> str:
    """Hash of the normalizer's source, so a changed normalizer invalidates cached corpora."""
    import inspect

    from seqlab.text import normalize

    try:
        source = Path(inspect.getsourcefile(normalize) or "").read_bytes()
    except (OSError, TypeError):
        source = repr(normalize).encode()
    return hashlib.sha256(source).hexdigest()[:12]


@releases_outputs
def materialize_corpus(
    out_dir: str | os.PathLike[str],
    n_docs: int = DEFAULT_N_DOCS,
    seed: int = DEFAULT_SEED,
    noise_sd: float = DEFAULT_NOISE_SD,
    *,
    bank_dir: str | os.PathLike[str] | None = None,
    base_url: str = DEFAULT_BASE_URL,
    overwrite: bool = False,
) -> str:
    """Write the generated corpus in the layout a scrape produces, and return ``out_dir``.

    Layout: ``out_dir/corpus/part-00000.parquet`` with columns ``url, title, text, text_norm, score,
    split, fetched_at, status`` (``text_norm = seqlab.text.normalize(text)``, ``split`` from
    :func:`split_for_url`, ``fetched_at`` a fixed UTC timestamp, ``status = "ok"``) and
    ``out_dir/manifest.json`` (stage ``corpus``, labeler ``generator``).

    Idempotent: when ``out_dir`` already holds a manifest with the same config (including the sentence
    bank's and the normalizer's hashes) nothing is rewritten. The Parquet part is written to a temp dir
    and swapped in before the manifest is written, so a crash never leaves a manifest over a half corpus.

    Raises:
        seqlab.artifacts.OutputTaken: ``out_dir`` holds another stage's artifact, or a corpus made with
            another config (unless ``overwrite``).
    """
    from seqlab.artifacts import claim_output_dir, read_manifest, write_manifest
    from seqlab.corpus import corpus_table, write_corpus
    from seqlab.text import normalize
    from seqlab.text.config import NormalizeConfig

    out = Path(out_dir)
    bank = load_sentence_bank(bank_dir)
    config = {
        "n_docs": int(n_docs),
        "seed": int(seed),
        "noise_sd": float(noise_sd),
        "base_url": base_url,
        "on_topic_theme": ON_TOPIC_THEME,
        "bank_hash": bank_hash(bank),
        "normalizer": _normalizer_fingerprint(),
        "generator_version": GENERATOR_VERSION,
    }
    try:
        if read_manifest(out).get("config") == config and (out / "corpus").is_dir():
            log.info("corpus in %s is up to date; not regenerating", out)
            return str(out)
    except (FileNotFoundError, ValueError):
        pass
    claim_output_dir(out, "corpus", overwrite=overwrite, config=config)

    docs = generate_documents(n_docs, seed, bank=bank, noise_sd=noise_sd)
    urls = [article_url(d, base_url) for d in docs]
    splits = [split_for_url(u) for u in urls]
    table = corpus_table(
        {
            "url": urls,
            "title": [d.title for d in docs],
            "text": [d.text for d in docs],
            "text_norm": [normalize(d.text) for d in docs],
            "score": [d.score for d in docs],
            "split": splits,
            "fetched_at": [FETCHED_AT] * len(docs),
            "status": ["ok"] * len(docs),
        }
    )
    final = write_corpus(out, table)
    floor = noise_floor_rmse(docs)
    write_manifest(
        out,
        stage="corpus",
        config=config,
        metrics={
            "n_docs": len(docs),
            "noise_floor_rmse": round(floor, 4) if docs else None,
            "split_sizes": split_sizes(splits),
            "mean_score": round(float(np.mean([d.score for d in docs])), 4) if docs else None,
        },
        labeler="generator",
        normalize=NormalizeConfig().model_dump(),  # text_norm = normalize(text) with the defaults
        layout={"corpus": "corpus/"},
    )
    log.info("wrote %d generated docs to %s (noise floor RMSE %.3f)", len(docs), final, floor)
    return str(out)


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("SEQLAB_CACHE"):
        return Path(os.environ["SEQLAB_CACHE"])
    return Path.home() / ".cache" / "seqlab"


def bundled_corpus_dir(
    cache_dir: str | os.PathLike[str] | None = None, *, bank_dir: str | os.PathLike[str] | None = None
) -> str:
    """The default corpus (3000 docs, seed 0), materialized once into a cache and reused.

    The folder is ``<cache>/bundled-<hash>``, where ``<cache>`` is ``cache_dir``, else ``$SEQLAB_CACHE``,
    else ``~/.cache/seqlab``, and the hash covers the sentence bank, the generation parameters and the
    normalizer, so an edited bank or normalizer gets a fresh folder. Safe when several processes race:
    each builds in a private temp folder and the first rename wins.

    Returns:
        the corpus directory (holding ``corpus/`` and ``manifest.json``), as a string.
    """
    bank = load_sentence_bank(bank_dir)
    key_src = "|".join(
        str(x)
        for x in (
            bank_hash(bank),
            DEFAULT_N_DOCS,
            DEFAULT_SEED,
            DEFAULT_NOISE_SD,
            DEFAULT_BASE_URL,
            GENERATOR_VERSION,
            _normalizer_fingerprint(),
        )
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:12]
    root = _cache_root(cache_dir)
    final = root / f"bundled-{key}"
    if (final / "manifest.json").is_file():
        return str(final)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".bundled-{key}-{uuid.uuid4().hex[:8]}"
    materialize_corpus(tmp, DEFAULT_N_DOCS, DEFAULT_SEED, DEFAULT_NOISE_SD, bank_dir=bank_dir)
    try:
        tmp.rename(final)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "manifest.json").is_file():
            raise
    return str(final)
