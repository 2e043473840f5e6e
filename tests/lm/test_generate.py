"""Decoding contracts, checked against the model's own logits recomputed without the KV cache."""

from __future__ import annotations

import pytest
import torch

from seqlab.lm.config import DecodingConfig
from seqlab.lm.generate import context_limit, generate_ids, iter_token_ids
from seqlab.lm.generator import Generator

PROMPTS = ["ذهب الطلاب إلى المكتبة", "هطلت أمطار غزيرة", "باع التاجر"]


def _texts(tiny_model, prompt: str, opts: DecodingConfig) -> list[str]:
    return [c.text for c in Generator(*tiny_model).generate(prompt, opts)]


def _prompt(tokenizer, text: str) -> torch.Tensor:
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])  # (1, T)


def _step_logits(model, prompt: torch.Tensor, new: list[int]) -> torch.Tensor:
    """(len(new), V) logits that predicted each new token, from one uncached forward pass."""
    full = torch.cat([prompt, torch.tensor([new])], dim=1)
    with torch.no_grad():
        logits = model(input_ids=full, use_cache=False).logits[0]  # (T + n, V)
    t = prompt.shape[1]
    return logits[t - 1 : t - 1 + len(new)]


def _sample_all(model, tokenizer, opts: DecodingConfig):
    """(prompt ids, new ids) for every prompt x seed."""
    runs = []
    for text in PROMPTS:
        prompt = _prompt(tokenizer, text)
        for seed in range(3):
            new = generate_ids(model, prompt, opts.replace(seed=seed), eos_token_id=None)[0]
            runs.append((prompt, new))
    return runs


def test_greedy_is_the_argmax_chain_and_deterministic(tiny_model):
    model, tokenizer = tiny_model
    opts = DecodingConfig(strategy="greedy", repetition_penalty=1.0, max_new_tokens=12, stop_at_eos=False)
    for text in PROMPTS:
        prompt = _prompt(tokenizer, text)
        new = generate_ids(model, prompt, opts)[0]
        assert len(new) == 12
        assert new == _step_logits(model, prompt, new).argmax(dim=-1).tolist()
        assert generate_ids(model, prompt, opts.replace(seed=123))[0] == new


def test_greedy_matches_transformers_generate(tiny_model):
    """Parity with the reference implementation, with and without repetition penalty."""
    model, tokenizer = tiny_model
    prompt = _prompt(tokenizer, PROMPTS[0])
    for penalty in (1.0, 1.3):
        opts = DecodingConfig(
            strategy="greedy", repetition_penalty=penalty, max_new_tokens=10, stop_at_eos=False
        )
        ours = generate_ids(model, prompt, opts)[0]
        ref = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=10,
            min_new_tokens=10,
            repetition_penalty=penalty,
            pad_token_id=tokenizer.eos_token_id,
        )[0, prompt.shape[1] :].tolist()
        assert ours == ref


def test_kv_cache_gives_the_same_tokens_as_full_recompute(tiny_model):
    model, tokenizer = tiny_model
    prompt = _prompt(tokenizer, PROMPTS[1])
    opts = DecodingConfig(max_new_tokens=15, seed=7, stop_at_eos=False)
    cached = generate_ids(model, prompt, opts)[0]
    assert generate_ids(model, prompt, opts.replace(use_cache=False))[0] == cached
    seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}
    for use_cache in (True, False):
        hook = lambda raw, scores, chosen, c=use_cache: seen[c].append(raw.clone())  # noqa: E731
        list(iter_token_ids(model, prompt, opts.replace(use_cache=use_cache), logits_hook=hook))
    assert len(seen[True]) == len(seen[False]) == 15
    for a, b in zip(seen[True], seen[False], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_top_k_never_leaves_the_k_most_likely(tiny_model):
    model, tokenizer = tiny_model
    k = 5
    base = DecodingConfig(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=10)
    outside_without_top_k = 0
    for prompt, new in _sample_all(model, tokenizer, base.replace(top_k=k)):
        top = _step_logits(model, prompt, new).topk(k, dim=-1).indices  # (n, k)
        assert all(tok in row for tok, row in zip(new, top.tolist(), strict=True))
    for prompt, new in _sample_all(model, tokenizer, base):
        top = _step_logits(model, prompt, new).topk(k, dim=-1).indices
        outside_without_top_k += sum(tok not in row for tok, row in zip(new, top.tolist(), strict=True))
    assert outside_without_top_k > 0, "the check is vacuous: plain sampling also stayed in the top k"


def test_top_p_stays_in_the_nucleus(tiny_model):
    model, tokenizer = tiny_model
    p, temperature = 0.6, 0.9
    opts = DecodingConfig(
        temperature=temperature, top_k=0, top_p=p, repetition_penalty=1.0, max_new_tokens=10
    )
    vocab = model.config.vocab_size
    sizes = []
    for prompt, new in _sample_all(model, tokenizer, opts):
        probs = (_step_logits(model, prompt, new) / temperature).softmax(dim=-1)  # (n, V)
        for tok, row in zip(new, probs, strict=True):
            ranked = row.argsort(descending=True)
            mass = row[ranked].cumsum(0)
            size = int((mass < p).sum()) + 1  # smallest prefix whose mass reaches p
            nucleus = set(ranked[:size].tolist())
            sizes.append(size)
            assert tok in nucleus
    assert sum(sizes) / len(sizes) < vocab / 2, "nucleus covers most of the vocabulary: check is weak"


def test_repetition_penalty_lowers_repeats(tiny_model):
    model, tokenizer = tiny_model

    def repeat_rate(penalty: float) -> float:
        repeated = total = 0
        for text in PROMPTS:
            opts = DecodingConfig(strategy="greedy", repetition_penalty=penalty, max_new_tokens=24)
            new = generate_ids(model, _prompt(tokenizer, text), opts.replace(stop_at_eos=False))[0]
            repeated += len(new) - len(set(new))
            total += len(new)
        return repeated / total

    assert repeat_rate(1.5) < repeat_rate(1.0)


def test_seed_reproducible_and_candidates_differ(tiny_model):
    opts = DecodingConfig(max_new_tokens=16, num_candidates=3, seed=11, stop_at_eos=False)
    first = _texts(tiny_model, PROMPTS[2], opts)
    assert len(first) == 3
    assert _texts(tiny_model, PROMPTS[2], opts) == first
    assert len(set(first)) > 1, "candidates should be independent samples"
    assert _texts(tiny_model, PROMPTS[2], opts.replace(seed=12)) != first


def test_stream_yields_the_same_text_piece_by_piece(tiny_model):
    gen = Generator(*tiny_model)
    opts = DecodingConfig(max_new_tokens=20, seed=3)
    pieces = list(gen.stream(PROMPTS[0], opts))
    assert len(pieces) > 1
    assert "".join(pieces) == gen.generate(PROMPTS[0], opts)[0].text
    with pytest.raises(ValueError, match="num_candidates"):
        list(gen.stream(PROMPTS[0], opts.replace(num_candidates=2)))


def test_stops_at_end_of_text_and_empty_prompt(tiny_model):
    model, tokenizer = tiny_model
    opts = DecodingConfig(max_new_tokens=12, num_candidates=3, seed=0)
    start = torch.tensor([[tokenizer.eos_token_id]])  # a new document, as after <|endoftext|> in training
    free = generate_ids(model, start, opts.replace(stop_at_eos=False), eos_token_id=None)
    stop = free[0][4]  # pretend the token candidate 0 drew at step 5 is end-of-text
    steps = [c.tolist() for c in iter_token_ids(model, start, opts, eos_token_id=stop)]
    first = [row[0] for row in steps]
    assert first[: first.index(stop)] == free[0][: free[0].index(stop)]
    assert set(first[first.index(stop) :]) == {stop}  # a finished candidate only repeats end-of-text
    cut = generate_ids(model, start, opts, eos_token_id=stop)
    assert cut[0] == free[0][: free[0].index(stop)] and all(stop not in row for row in cut)
    texts = _texts(tiny_model, "", opts)  # an empty prompt starts from <|endoftext|>
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    with pytest.raises(ValueError, match="non-empty"):
        next(iter_token_ids(model, torch.zeros(1, 0, dtype=torch.long), opts))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.5),
        ("top_k", -1),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("repetition_penalty", 0.0),
        ("max_new_tokens", 0),
        ("num_candidates", 0),
        ("strategy", "beam"),
    ],
)
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DecodingConfig(**{field: value})


def test_context_limit(tiny_model):
    model, tokenizer = tiny_model
    with pytest.raises(ValueError, match="max_new_tokens"):
        _texts(tiny_model, PROMPTS[0], DecodingConfig(max_new_tokens=model.config.n_positions))
    with pytest.raises(ValueError, match="max_new_tokens"):  # the same rule without a Generator
        generate_ids(
            model, _prompt(tokenizer, PROMPTS[0]), DecodingConfig(max_new_tokens=model.config.n_positions)
        )
    long_prompt = " ".join(PROMPTS * 20)  # longer than the 64-token context: its start is dropped
    out = _texts(tiny_model, long_prompt, DecodingConfig(max_new_tokens=8, seed=0))
    assert len(out) == 1


def test_load_generator_errors(tmp_path):
    from seqlab.lm.generator import load_generator

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_generator(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_generator(tmp_path)


@pytest.mark.parametrize(
    "damage, error, names",
    [
        ("drop_tokenizer", FileNotFoundError, "has no tokenizer"),
        ("drop_weights", FileNotFoundError, "has no weights"),
        ("truncate_weights", ValueError, "model.safetensors"),
        ("empty_tokenizer", ValueError, "tokenizer"),
        ("broken_config", ValueError, r"config\.json is broken: not valid JSON"),
    ],
)
def test_a_damaged_generator_dir_names_the_file(tmp_path, tiny_gpt2_dir, damage, error, names):
    """A copied-but-broken model dir gets one clear error naming what is wrong, not a deep HF traceback."""
    import shutil

    from seqlab.lm.generator import load_generator

    model_dir = tmp_path / "gen"
    shutil.copytree(tiny_gpt2_dir, model_dir)
    if damage == "drop_tokenizer":
        for name in ("tokenizer.json", "vocab.json", "merges.txt"):
            (model_dir / name).unlink(missing_ok=True)
    elif damage == "drop_weights":
        for weights in model_dir.glob("*.safetensors"):
            weights.unlink()
    elif damage == "truncate_weights":
        weights = model_dir / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "broken_config":
        (model_dir / "config.json").write_text('{"model_type": "gpt2",', encoding="utf-8")
    else:
        for name in ("tokenizer.json", "vocab.json"):
            if (model_dir / name).exists():
                (model_dir / name).write_text("{}", encoding="utf-8")
    with pytest.raises(error, match=names) as caught:
        load_generator(model_dir)
    assert str(model_dir) in str(caught.value)


def test_batched_prompts_decode_as_alone(tiny_model):
    """Left-padded rows with masks and position ids give each prompt the tokens it gets alone."""
    from seqlab.lm.generator import GenerationRequest

    model, tokenizer = tiny_model
    gen = Generator(model, tokenizer)
    long_prompt = " ".join(PROMPTS * 10)  # cut from the left to fit the context
    requests = [
        GenerationRequest(PROMPTS[0], DecodingConfig(strategy="greedy", max_new_tokens=12)),
        GenerationRequest(
            PROMPTS[1], DecodingConfig(strategy="greedy", max_new_tokens=30, repetition_penalty=1.0)
        ),
        GenerationRequest(long_prompt, DecodingConfig(strategy="greedy", max_new_tokens=4)),
        GenerationRequest(PROMPTS[2], DecodingConfig(max_new_tokens=10, num_candidates=2, seed=4)),
    ]
    batched = gen.generate_batch(requests)
    lengths = {len(gen.encode(r.prompt, r.config.max_new_tokens)[0]) for r in requests}
    assert len(lengths) == len(requests), "prompts of equal length would not exercise the padding"
    for request, candidates in zip(requests, batched, strict=True):
        alone = gen.generate(request.prompt, request.config)
        assert [c.text for c in candidates] == [c.text for c in alone]
        assert len(candidates) == request.config.num_candidates
    alone_ids = generate_ids(
        model, _prompt(tokenizer, PROMPTS[0]), requests[0].config, tokenizer.eos_token_id
    )
    assert batched[0][0].text == tokenizer.decode(alone_ids[0], skip_special_tokens=True)
    assert batched[2][0].prompt_truncated and not batched[0][0].prompt_truncated
    assert all(
        c.completion_tokens <= r.config.max_new_tokens
        for r, cs in zip(requests, batched, strict=True)
        for c in cs
    )


def test_stop_strings_and_finish_reasons(tiny_model):
    gen = Generator(*tiny_model)
    cfg = DecodingConfig(strategy="greedy", max_new_tokens=16, stop_at_eos=False)
    full = gen.generate(PROMPTS[0], cfg)[0]
    assert full.finish_reason == "length" and full.completion_tokens == 16
    stop = full.text[3:5]
    cut = gen.generate(PROMPTS[0], cfg, stop=[stop])[0]
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.find(stop)]
    assert "".join(gen.stream(PROMPTS[0], cfg, stop=[stop])) == cut.text


def test_zero_temperature_means_greedy():
    assert DecodingConfig(temperature=0).strategy == "greedy"
    assert DecodingConfig(temperature=0.5).strategy == "sample"


def _alone(model, prompt: list[int], opts: DecodingConfig, eos: int | None) -> list[int]:
    steps = list(iter_token_ids(model, torch.tensor([prompt]), opts, eos))
    return torch.stack(steps, dim=1)[0].tolist() if steps else []


def test_requests_joining_a_running_batch_decode_as_alone(tiny_model):
    """Continuous batching: requests join mid-flight with longer and shorter prompts and leave when done;
    every one of them gets exactly the tokens it gets alone (greedy, and sampled with a seed)."""
    from seqlab.lm.generate import RunningBatch

    model, tokenizer = tiny_model
    eos = tokenizer.eos_token_id
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    long_ids = tokenizer(" ".join(PROMPTS * 3), add_special_tokens=False)["input_ids"]
    long_ids = long_ids[-(context_limit(model) - 12) :]  # fits the context with b's 12 new tokens
    plan = {  # step at which it joins -> (key, prompt, options)
        0: [("a", ids[0], DecodingConfig(strategy="greedy", max_new_tokens=9, stop_at_eos=False))],
        3: [
            ("b", long_ids, DecodingConfig(max_new_tokens=12, seed=5, stop_at_eos=False)),
            ("c", ids[2], DecodingConfig(strategy="greedy", max_new_tokens=4, repetition_penalty=1.0)),
        ],
        11: [("d", ids[1], DecodingConfig(max_new_tokens=6, num_candidates=2, seed=1, stop_at_eos=False))],
    }
    batch = RunningBatch(model, eos)
    got: dict[str, list[list[int]]] = {}
    widths = []
    step = 0
    while step in plan or len(batch) or step < max(plan):
        for key, prompt, opts in plan.get(step, []):
            batch.add(key, torch.tensor([prompt]), opts)
        for key, tokens, _ in batch.step():
            got.setdefault(key, []).append(tokens.tolist())
        widths.append(batch.ids.shape[1])
        step += 1
    assert len(long_ids) > len(ids[0]) + 3, "b must widen the running batch"
    assert widths[3] == len(long_ids) + 1, "b's prompt widens the batch: the others are left-padded"
    assert widths[14] == len(ids[1]) + 4, "once b has left, only d remains, its padding trimmed away"
    for joins in plan.values():
        for key, prompt, opts in joins:
            rows = torch.tensor(got[key]).T.tolist()  # (candidates, steps)
            steps = list(iter_token_ids(model, torch.tensor([prompt]), opts, eos))
            assert rows == torch.stack(steps, dim=1).tolist(), key  # candidates share one generator
    assert len(batch) == 0 and batch.ids.shape == (0, 0)


def test_a_cancelled_request_leaves_and_the_others_are_unchanged(tiny_model):
    from seqlab.lm.generate import RunningBatch

    model, tokenizer = tiny_model
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    opts = DecodingConfig(strategy="greedy", max_new_tokens=8, stop_at_eos=False)
    batch = RunningBatch(model, tokenizer.eos_token_id)
    batch.add("keep", torch.tensor([ids[0]]), opts)
    batch.add("drop", torch.tensor([ids[1] * 3]), opts)
    kept = []
    for step in range(8):
        if step == 2:
            batch.cancel("drop")
            assert batch.rows == 1 and batch.ids.shape[1] == len(ids[0]) + 2, "its padding went with it"
        out = {key: tokens for key, tokens, _ in batch.step()}
        assert ("drop" in out) == (step < 2)
        kept.append(out["keep"].item())
    assert kept == _alone(model, ids[0], opts, tokenizer.eos_token_id)
    assert len(batch) == 0


# --- every decoding value the schema accepts decodes -------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# The extremes the schema lets through, then the whole accepted ranges (DecodingParams' bounds).
TINY = st.sampled_from([5e-324, 1e-45, 1e-40, 1e-38, 1e-20])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    temperature=TINY | st.floats(min_value=0, max_value=100, exclude_min=True),
    top_p=TINY | st.floats(min_value=0, max_value=1, exclude_min=True),
    repetition_penalty=TINY | st.floats(min_value=0, max_value=10, exclude_min=True),
    top_k=st.integers(min_value=0, max_value=100),
)
def test_every_accepted_decoding_value_decodes(tiny_model, temperature, top_p, repetition_penalty, top_k):
    model, tokenizer = tiny_model
    opts = DecodingConfig(
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        top_k=top_k,
        max_new_tokens=3,
        stop_at_eos=False,
        seed=0,
    )
    new = generate_ids(model, _prompt(tokenizer, PROMPTS[0]), opts)[0]
    assert len(new) == 3 and all(0 <= t < model.config.vocab_size for t in new)


def test_a_vanishing_temperature_is_the_greedy_limit(tiny_model):
    model, tokenizer = tiny_model
    greedy = DecodingConfig(strategy="greedy", repetition_penalty=1.0, max_new_tokens=8, stop_at_eos=False)
    cold = greedy.replace(strategy="sample", temperature=1e-40, top_k=0, top_p=1.0, seed=3)
    prompt = _prompt(tokenizer, PROMPTS[1])
    assert generate_ids(model, prompt, cold)[0] == generate_ids(model, prompt, greedy)[0]
