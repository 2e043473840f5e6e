"""From normalized text to tokens: split, lowercase, drop stop words, stem.

Tokenizer: the Hugging Face ``tokenizers`` ``Whitespace`` pre-tokenizer (Rust, maintained, the same
library the GPT-2 stage uses). It splits on the regex ``\\w+|[^\\w\\s]+``, so punctuation such as the
Arabic comma ، or question mark ؟ becomes its own piece; pieces without a letter or digit are dropped.
Arabic and Latin words are split alike; Latin words pass through (lowercased by default).

Stop words: Taha Zerrouki's ``Arabic-Stopwords`` list (about 13k inflected forms), normalized with the
same switches as the text so that e.g. ``إلى`` in the list matches ``الي`` in normalized text, plus the
project overrides in ``data/stopwords_extra.txt`` (``word`` adds, ``-word`` removes, ``#`` comments).

Stemming: ``snowballstemmer.stemmer("arabic")`` (pure Python), memoized per word.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from seqlab.text.config import CHAR_SWITCHES, SWITCHES, NormalizeConfig, resolve_switches
from seqlab.text.normalize import apply_plan, compile_plan

__all__ = ["STOPWORDS_EXTRA", "load_stopwords", "preprocess", "stem", "tokenize"]

log = logging.getLogger(__name__)

# Project overrides; present in a source checkout, silently absent from an installed wheel.
STOPWORDS_EXTRA = Path(__file__).resolve().parents[2] / "data" / "stopwords_extra.txt"
_N_CHAR = len(CHAR_SWITCHES)
_STOPWORDS_AT = SWITCHES.index("remove_stopwords")
_STEM_AT = SWITCHES.index("stem")
_LOWER_AT = SWITCHES.index("lowercase_latin")


@lru_cache(maxsize=1)
def _pre_tokenizer() -> Any:
    from tokenizers.pre_tokenizers import Whitespace

    return Whitespace()


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word tokens (letters/digits runs); punctuation-only pieces are dropped.

    Does not normalize: call :func:`seqlab.text.normalize` first, or use :func:`preprocess`.
    """
    return [piece for piece, _ in _pre_tokenizer().pre_tokenize_str(text) if any(c.isalnum() for c in piece)]


_local = threading.local()


@lru_cache(maxsize=1 << 17)
def stem(word: str) -> str:
    """The Snowball Arabic stem of one token (memoized; one stemmer per thread)."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import snowballstemmer

        stemmer = _local.stemmer = snowballstemmer.stemmer("arabic")
    return stemmer.stemWord(word)


def _read_overrides(path: Path) -> tuple[set[str], set[str]]:
    add: set[str] = set()
    remove: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        word = line.split("#", 1)[0].strip()
        if word.startswith("-"):
            remove.add(word[1:].strip())
        elif word:
            add.add(word)
    return add, remove


@lru_cache(maxsize=16)
def _stopwords(char_key: tuple[bool, ...], lowercase: bool, extra: Path | None) -> frozenset[str]:
    import arabicstopwords.arabicstopwords as stp

    plan = compile_plan(char_key)
    words = set(stp.stopwords_list())
    if extra is not None and extra.is_file():
        add, remove = _read_overrides(extra)
        words = (words | add) - remove
        # Remove by normalized form too, so "-إلى" also removes "الي".
        remove = {apply_plan(w, plan) for w in remove}
    else:
        remove = set()
        log.debug("no stop-word overrides at %s", extra)
    normalized = {apply_plan(w, plan) for w in words} - remove
    if lowercase:
        normalized = {w.lower() for w in normalized}
    normalized.discard("")
    return frozenset(normalized)


def load_stopwords(
    config: NormalizeConfig | None = None, extra: str | Path | None = STOPWORDS_EXTRA, **switches: bool
) -> frozenset[str]:
    """The stop-word set, normalized with the given switches so it matches normalized tokens.

    Args:
        config: normalization switches (defaults when None).
        extra: an overrides file (``word`` adds, ``-word`` removes); None for the package list only.
        **switches: per-call overrides, as in :func:`seqlab.text.normalize`.
    """
    key = resolve_switches(config, switches)
    return _stopwords(key[:_N_CHAR], key[_LOWER_AT], None if extra is None else Path(extra))


def preprocess(text: str, config: NormalizeConfig | None = None, **switches: bool) -> list[str]:
    """The whole text pipeline: normalize, tokenize, lowercase, drop stop words, stem.

    Args:
        text: any ``str``.
        config: switches as a config object (defaults when None).
        **switches: per-call overrides of any :class:`~seqlab.text.config.NormalizeConfig` field.

    Returns:
        The tokens, in text order.

    Raises:
        TypeError: ``text`` is not a str, a switch is unknown or not a bool.
    """
    if not isinstance(text, str):
        raise TypeError(f"preprocess() expects a str, got {type(text).__name__}")
    key = resolve_switches(config, switches)
    char_key = key[:_N_CHAR]
    tokens = tokenize(apply_plan(text, compile_plan(char_key)))
    if key[_LOWER_AT]:
        tokens = [t.lower() for t in tokens]
    if key[_STOPWORDS_AT]:
        stop = _stopwords(char_key, key[_LOWER_AT], STOPWORDS_EXTRA)
        tokens = [t for t in tokens if t not in stop]
    if key[_STEM_AT]:
        tokens = [stem(t) for t in tokens]
    return tokens
