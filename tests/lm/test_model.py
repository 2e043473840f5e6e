"""Tokenizer training, model build/load, and the two model sources."""

from __future__ import annotations

import torch

from seqlab.config import load_config
from seqlab.lm.config import FinetuneJobConfig
from seqlab.lm.finetune import prepare_model_and_tokenizer
from seqlab.lm.model import ModelSpec, count_parameters, init_model, load_causal_lm
from seqlab.lm.tokenizer import EOS_TOKEN, load_tokenizer


def test_bpe_tokenizer_round_trips_arabic(tokenizer, tmp_path):
    text = "قرأت البنت قصة قصيرة عن طائر، ثم نامت مبكرا! 😊 ١٢٣"  # unseen emoji/digits: bytes cover them
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.pad_token_id == tokenizer.eos_token_id
    assert len(ids) < len(text.encode("utf-8")), "merges learned on the corpus should compress Arabic"
    tokenizer.save_pretrained(tmp_path)
    again = load_tokenizer(str(tmp_path))
    assert again(text, add_special_tokens=False)["input_ids"] == ids


def test_tiny_gpt2_loads_by_path(tiny_gpt2_dir):
    model = load_causal_lm(str(tiny_gpt2_dir))
    assert model.config.n_layer == 2 and next(model.parameters()).dtype == torch.float32
    same = init_model(ModelSpec(base_model=str(tiny_gpt2_dir)))
    for a, b in zip(model.parameters(), same.parameters(), strict=True):
        assert torch.equal(a, b)


def test_scratch_spec_is_seeded(corpus_dir):
    cfg = load_config(
        FinetuneJobConfig, None, ["--model.n_layer=1", "--model.n_embd=32", "--model.vocab_size=300"]
    )
    spec, tok, context = prepare_model_and_tokenizer(cfg.model_copy(update={}), str(corpus_dir))
    assert spec.source == "scratch" and context == cfg.model.n_positions
    a, b = init_model(spec), init_model(spec)
    assert a.config.vocab_size == len(tok) and a.config.eos_token_id == tok.eos_token_id
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    other = init_model(ModelSpec(gpt2_config=spec.gpt2_config, seed=spec.seed + 1))
    assert not torch.equal(a.transformer.wte.weight, other.transformer.wte.weight)
    assert count_parameters(a) > count_parameters(a, non_embedding=True) > 0


def test_pretrained_spec(corpus_dir, tiny_gpt2_dir):
    cfg = load_config(FinetuneJobConfig, None, [])
    cfg.model.base_model = str(tiny_gpt2_dir)
    spec, tok, context = prepare_model_and_tokenizer(cfg, str(corpus_dir))
    assert spec.source == "pretrained" and context == 64
    assert tok.pad_token_id is not None
    assert cfg.effective_lr() == 5e-5
