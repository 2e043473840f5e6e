"""OpenAI's logprobs/echo from the generator: exact lengths, and the model's own log-likelihoods."""

from __future__ import annotations

import math

import pytest
import torch

from seqlab.lm.config import DecodingConfig
from seqlab.lm.generator import Generator
from seqlab.lm.requests import ScoringRequest

PROMPT = "ذهب الطلاب إلى المكتبة"


@pytest.fixture(scope="module")
def gen(tiny_model):
    model, tokenizer = tiny_model
    return Generator(model, tokenizer)


def reference_logprobs(model, ids: list[int]) -> list[float]:
    """log p(ids[t] | ids[:t]) for t >= 1, computed the plain way, one prefix at a time."""
    out = []
    with torch.no_grad():
        for t in range(1, len(ids)):
            logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1]
            out.append(torch.log_softmax(logits.double(), -1)[ids[t]].item())
    return out


GREEDY = DecodingConfig(strategy="greedy", repetition_penalty=1.0, stop_at_eos=False)


def test_echo_with_one_new_token_is_what_lm_eval_reads(gen):
    ids = gen.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    [choice] = gen.score(ScoringRequest(tuple(ids), GREEDY, 1, top_logprobs=1, echo=True))
    lp = choice.logprobs
    assert (
        len(lp.tokens)
        == len(lp.token_logprobs)
        == len(lp.top_logprobs)
        == len(lp.text_offset)
        == len(ids) + 1
    )
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    expected = reference_logprobs(
        gen.model, [*ids, gen.tokenizer(choice.text, add_special_tokens=False)["input_ids"][-1]]
    )
    assert lp.token_logprobs[1 : len(ids)] == pytest.approx(expected[: len(ids) - 1], abs=1e-4)
    # the continuation is greedy: its token is the most likely one, which top_logprobs shows
    assert max(lp.top_logprobs[-1].values()) == pytest.approx(lp.token_logprobs[-1], abs=1e-6)
    assert choice.prompt_tokens == len(ids) and choice.completion_tokens == 1
    assert choice.text.startswith(PROMPT) and lp.text_offset[0] == 0


def test_max_tokens_zero_scores_the_prompt_alone(gen):
    [choice] = gen.score(ScoringRequest(PROMPT, GREEDY, 0, echo=True))
    ids = gen.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    assert choice.text == PROMPT and choice.completion_tokens == 0
    assert len(choice.logprobs.token_logprobs) == len(ids)
    total = sum(choice.logprobs.token_logprobs[1:])
    assert total == pytest.approx(sum(reference_logprobs(gen.model, ids)), abs=1e-3)
    assert all(t is None for t in choice.logprobs.top_logprobs)  # logprobs=0: no alternatives asked for
    offsets = choice.logprobs.text_offset
    # byte-level tokens may split a letter (alone they decode to U+FFFD); offsets still rise through the text
    assert (
        offsets == sorted(offsets) and offsets[-1] < len(PROMPT) and len(choice.logprobs.tokens) == len(ids)
    )


def test_without_echo_only_the_new_tokens_and_n_choices(gen):
    cfg = DecodingConfig(num_candidates=3, seed=1, stop_at_eos=False)
    choices = gen.score(ScoringRequest(PROMPT, cfg, 4, top_logprobs=2))
    assert len(choices) == 3
    for c in choices:
        lp = c.logprobs
        assert len(lp.tokens) == c.completion_tokens == 4 and all(math.isfinite(v) for v in lp.token_logprobs)
        assert all(2 <= len(top) <= 3 for top in lp.top_logprobs) and lp.text_offset[0] == 0


@pytest.mark.parametrize(
    "prompt, says",
    [((), "token list is empty"), ((1, 10**9), "token 1000000000 at position 1 is not in the vocabulary")],
)
def test_bad_token_ids_name_the_position(gen, prompt, says):
    with pytest.raises(ValueError, match=says):
        gen.score(ScoringRequest(prompt, GREEDY, 1, echo=True))


def test_a_prompt_longer_than_the_context_is_refused_not_cut(gen):
    context = gen.context_length
    with pytest.raises(ValueError, match=f"more than the model's context of {context}"):
        gen.score(ScoringRequest(tuple([5] * context), GREEDY, 1, echo=True))


def test_an_end_of_text_the_model_chose_keeps_its_entry(gen, monkeypatch):
    """lm-eval reads len(prompt) + max_tokens entries and drops the last: an end-of-text chosen as the new
    token must be that entry (its text is not in the choice's text)."""
    import seqlab.lm.logprobs

    monkeypatch.setattr(seqlab.lm.logprobs, "generate_ids", lambda *a, **k: [[]])  # EOS came first
    ids = gen.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    [choice] = gen.score(
        ScoringRequest(tuple(ids), GREEDY.replace(stop_at_eos=True), 1, top_logprobs=1, echo=True)
    )
    lp = choice.logprobs
    assert len(lp.token_logprobs) == len(ids) + 1 and lp.tokens[-1] == gen.tokenizer.decode(
        [gen.tokenizer.eos_token_id]
    )
    assert choice.finish_reason == "stop" and choice.completion_tokens == 1
    assert lp.token_logprobs[-1] == pytest.approx(
        reference_logprobs(gen.model, [*ids, gen.tokenizer.eos_token_id])[-1], abs=1e-4
    )
    assert choice.text == gen.tokenizer.decode(ids)  # the end-of-text is not text
