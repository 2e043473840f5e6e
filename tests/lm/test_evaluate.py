"""Perplexity, distinct-n, BLEU and the per-strategy table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqlab.lm.config import DECODING_PRESETS as CONFIG_PRESETS
from seqlab.lm.evaluate import (
    DECODING_PRESETS,
    bleu,
    continuation_set,
    distinct_n,
    evaluate_strategies,
    perplexity,
)


def test_distinct_n_counts_unique_ngrams():
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # "a b", "b a", "a b"
    assert distinct_n(["قال الولد", "قال البنت"], 1) == pytest.approx(3 / 4)
    assert distinct_n(["وحيدة"], 2) == 0.0


def test_bleu_bounds():
    refs = ["ذهب الولد إلى المدرسة صباحا مع أخيه الكبير"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert bleu(["سماء زرقاء صافية فوق البحر الهادئ اليوم"], refs) < 5.0
    with pytest.raises(ValueError):
        bleu(["x"], [])


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tiny_gpt2_dir):
    from seqlab.lm.model import load_causal_lm

    model = load_causal_lm(str(tiny_gpt2_dir))
    with torch.no_grad():  # zero final LayerNorm -> all logits equal -> uniform next-token distribution
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
    blocks = np.random.default_rng(0).integers(0, model.config.vocab_size, size=(3, 16))
    assert perplexity(model, blocks, batch_size=2) == pytest.approx(model.config.vocab_size, rel=1e-4)


def test_perplexity_matches_mean_loss(tiny_gpt2_dir):
    from seqlab.lm.model import load_causal_lm

    model = load_causal_lm(str(tiny_gpt2_dir)).eval()
    blocks = np.random.default_rng(1).integers(0, model.config.vocab_size, size=(4, 12))
    ids = torch.as_tensor(blocks)
    with torch.no_grad():
        expected = math.exp(float(model(input_ids=ids, labels=ids).loss))
    assert perplexity(model, blocks, batch_size=3) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        perplexity(model, blocks[:0])


def test_strategy_table(tiny_model, corpus_dir):
    from seqlab.lm.data import read_split_texts

    model, tokenizer = tiny_model
    texts = read_split_texts(str(corpus_dir), "test")
    held = continuation_set(tokenizer, texts, prompt_tokens=8, continuation_tokens=6, num=3)
    assert held.prompt_ids.shape == (3, 8) and len(held.references) == 3
    rows = evaluate_strategies(model, tokenizer, held, ["greedy", "default"], seed=0)
    assert [r["strategy"] for r in rows] == ["greedy", "default", "reference"]
    for r in rows:
        assert 0.0 <= r["bleu"] <= 100.0 and 0.0 <= r["distinct_1"] <= 1.0
    assert rows[-1]["bleu"] == 100.0
    with pytest.raises(ValueError, match="prompt_tokens"):
        continuation_set(tokenizer, texts, prompt_tokens=5000, continuation_tokens=6, num=3)


def test_presets_match_the_config_names_and_the_seed_table():
    assert tuple(DECODING_PRESETS) == CONFIG_PRESETS
    d = DECODING_PRESETS["default"]
    assert 0.7 <= d.temperature <= 1.0 and 40 <= d.top_k <= 100
    assert 0.9 <= d.top_p <= 0.95 and 1.1 <= d.repetition_penalty <= 1.3
    assert DECODING_PRESETS["greedy"].strategy == "greedy"
