"""Held-out evaluation of a causal LM: perplexity, BLEU of continuations per decoding strategy, distinct-n.

Pure (no Ray). BLEU: each held-out test document is cut into a prompt (its first ``prompt_tokens``
tokens) and a reference continuation (the next ``continuation_tokens``); the model continues the prompt
with each decoding preset and sacrebleu scores the continuations against the references (``intl``
tokenization, which splits Arabic punctuation). BLEU against one human continuation is a weak signal
for open-ended generation — read it together with distinct-n (higher = less repetitive) and perplexity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seqlab.lm.config import DECODING_PRESET_CONFIGS, DecodingConfig
from seqlab.lm.generate import generate_ids

__all__ = [
    "DECODING_PRESETS",
    "ContinuationSet",
    "bleu",
    "continuation_set",
    "distinct_n",
    "evaluate_strategies",
    "perplexity",
    "real_word_share",
    "vocabulary",
    "words_of",
]

# Name -> options of the decoding presets compared in the report; defined once, in seqlab.lm.config.
DECODING_PRESETS: dict[str, DecodingConfig] = DECODING_PRESET_CONFIGS


@torch.inference_mode()
def perplexity(model: Any, blocks: np.ndarray, batch_size: int = 8) -> float:
    """exp(mean next-token negative log-likelihood) over all predicted tokens of ``blocks``.

    Args:
        model: a causal LM returning ``.loss`` when given ``labels``.
        blocks: int ``(num_blocks, block_size)`` token ids (packed held-out text).
        batch_size: blocks per forward pass.
    """
    if len(blocks) == 0:
        raise ValueError("no held-out blocks to compute perplexity on")
    model.eval()
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        batch = torch.as_tensor(blocks[start : start + batch_size], dtype=torch.long, device=device)  # (B, T)
        loss = model(input_ids=batch, labels=batch).loss  # mean over B*(T-1) predicted tokens
        predicted = batch.shape[0] * (batch.shape[1] - 1)
        total_nll += float(loss) * predicted
        total_tokens += predicted
    return math.exp(total_nll / total_tokens)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams across ``texts`` (0.0 when there are none)."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


_PUNCT = re.compile(r"[^\w]+")


def words_of(text: str) -> list[str]:
    """``text``'s words without their punctuation (``"الإنترنت."`` -> ``"الإنترنت"``); digits count."""
    return [w for w in (_PUNCT.sub("", word) for word in text.split()) if w]


def vocabulary(texts: Sequence[str]) -> frozenset[str]:
    """Every word of ``texts`` (:func:`words_of`): the training text a generator learned its words from."""
    return frozenset(w for text in texts for w in words_of(text))


def real_word_share(texts: Sequence[str], known: frozenset[str]) -> float:
    """Share of the words of ``texts`` that occur in ``known`` (a model's training vocabulary): how much of
    what a generator writes is words, not invented strings. NaN when ``texts`` hold no inner word.

    Each text's first and last word are left out: a continuation cut at a token boundary may start inside
    the prompt's last word and end inside a word (the human references are cut the same way).
    """
    words = [w for text in texts for w in words_of(text)[1:-1]]
    return sum(w in known for w in words) / len(words) if words else math.nan


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, ``intl`` tokenization) of hypotheses against one reference each."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="intl").score)


@dataclass(frozen=True)
class ContinuationSet:
    """Held-out prompts and the human continuations that followed them.

    Attributes:
        prompt_ids: int ``(N, prompt_tokens)`` token ids.
        references: the next ``continuation_tokens`` tokens of each document, decoded.
        continuation_tokens: reference length in tokens (= tokens generated per prompt).
    """

    prompt_ids: torch.Tensor
    references: list[str]
    continuation_tokens: int


def continuation_set(
    tokenizer: Any, texts: Sequence[str], prompt_tokens: int, continuation_tokens: int, num: int
) -> ContinuationSet:
    """Cut up to ``num`` documents long enough for a prompt and a reference continuation."""
    prompts: list[list[int]] = []
    references: list[str] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < prompt_tokens + continuation_tokens:
            continue
        prompts.append(ids[:prompt_tokens])
        cont = ids[prompt_tokens : prompt_tokens + continuation_tokens]
        references.append(tokenizer.decode(cont, skip_special_tokens=True))
        if len(prompts) == num:
            break
    if not prompts:
        raise ValueError(
            f"no held-out document has {prompt_tokens + continuation_tokens} tokens; "
            "lower eval.prompt_tokens/eval.continuation_tokens"
        )
    return ContinuationSet(torch.tensor(prompts, dtype=torch.long), references, continuation_tokens)


def evaluate_strategies(
    model: Any,
    tokenizer: Any,
    held_out: ContinuationSet,
    strategies: Sequence[str],
    seed: int = 0,
    known: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """BLEU, distinct-1/2 and :func:`real_word_share` (against ``known``, the training vocabulary) of each
    decoding preset's continuations (plus a ``reference`` row).

    All prompts have the same length, so each preset decodes them as one batch.
    """
    rows: list[dict[str, Any]] = []
    for name in strategies:
        opts = DECODING_PRESETS[name].replace(max_new_tokens=held_out.continuation_tokens, seed=seed)
        ids = generate_ids(model, held_out.prompt_ids, opts, tokenizer.eos_token_id)
        texts = [tokenizer.decode(row, skip_special_tokens=True) for row in ids]
        rows.append(
            {
                "strategy": name,
                "bleu": bleu(texts, held_out.references),
                "distinct_1": distinct_n(texts, 1),
                "distinct_2": distinct_n(texts, 2),
                "real_words": real_word_share(texts, known),
                "sample": texts[0],
            }
        )
    refs = held_out.references
    rows.append(
        {
            "strategy": "reference",
            "bleu": 100.0 * bool(refs),
            "distinct_1": distinct_n(refs, 1),
            "distinct_2": distinct_n(refs, 2),
            "real_words": real_word_share(refs, known),
            "sample": refs[0],
        }
    )
    return rows
