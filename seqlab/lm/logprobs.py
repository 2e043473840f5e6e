"""Log-probabilities of a prompt and its continuation: OpenAI's completions ``logprobs`` and ``echo``.

This is what evaluation harnesses send to score text (lm-eval's ``local-completions`` model, for
log-likelihood and perplexity tasks: ``{"prompt": [[ids]], "max_tokens": 1, "echo": true, "logprobs": 1,
"temperature": 0}``, then the sum of the prompt's part of ``token_logprobs``). So the lengths are exact:
with ``echo`` one entry per prompt token (the first ``None``: nothing predicts it) and then one per
generated token; ``max_tokens: 0`` scores the prompt alone.

The values are the model's own next-token distribution (log-softmax of its logits, before temperature,
top-k/top-p or the repetition penalty), recomputed in one forward pass over prompt + continuation, as vLLM
reports them by default. Nothing is truncated: a prompt that does not fit the context with ``max_tokens``
is an error, since a score of a cut prompt would be a wrong number. Torch, no Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from seqlab.lm.config import DecodingConfig
from seqlab.lm.generate import generate_ids
from seqlab.lm.requests import MAX_TOP_LOGPROBS, PromptError, ScoredChoice, ScoringRequest, TokenLogprobs

__all__ = ["prompt_ids", "request_ids", "score_request"]


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of ``prompt``; an empty prompt starts a new document, as after <|endoftext|> in training."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    if not ids:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ValueError("empty prompt and the tokenizer has no bos/eos token to start from")
        ids = [start]
    return list(ids)


def request_ids(tokenizer: Any, prompt: str | Sequence[int]) -> list[int]:
    """The prompt's token ids: its own when it was sent as ids (each checked against the vocabulary),
    else the tokenizer's.

    Raises:
        PromptError: an empty id list, or an id outside the vocabulary (the message names its position).
    """
    if isinstance(prompt, str):
        return prompt_ids(tokenizer, prompt)
    ids = [int(t) for t in prompt]
    if not ids:
        raise PromptError("the prompt's token list is empty")
    vocab = len(tokenizer)
    for i, token in enumerate(ids):
        if not 0 <= token < vocab:
            raise PromptError(f"token {token} at position {i} is not in the vocabulary (0..{vocab - 1})")
    return ids


def _cut_at_stop(tokenizer: Any, new: list[int], stop: Sequence[str]) -> tuple[list[int], str, bool]:
    """The generated ids and text up to the first stop string (excluded), and whether one was found."""
    text = tokenizer.decode(new)
    hits = [text.find(s) for s in stop if s in text]
    if not hits:
        return new, text, False
    end = min(hits)
    kept = 0
    while kept < len(new) and len(tokenizer.decode(new[: kept + 1])) <= end:
        kept += 1
    return new[:kept], text[:end], True


def _offsets(tokenizer: Any, ids: list[int], start: int) -> list[int]:
    """Where each token from ``start`` on begins in the decoded text of ``ids[start:]``."""
    base = len(tokenizer.decode(ids[:start])) if start else 0
    return [len(tokenizer.decode(ids[:t])) - base for t in range(start, len(ids))]


@torch.inference_mode()
def score_request(
    model: Any, tokenizer: Any, request: ScoringRequest, context: int | None
) -> list[ScoredChoice]:
    """Generate ``request.config.max_new_tokens`` tokens per candidate (possibly none) and report every
    token's log-probability (see the module docstring).

    Raises:
        PromptError: bad token ids, or a prompt that does not fit ``context`` with the new tokens (413).
    """
    config, n_new = DecodingConfig.of(request.config), request.max_new_tokens
    ids = request_ids(tokenizer, request.prompt)
    if context is not None and len(ids) + n_new > context:
        raise PromptError(
            f"the prompt has {len(ids)} tokens: with max_tokens {n_new} that is more than the model's "
            f"context of {context}",
            status=413,
        )
    top_n = min(request.top_logprobs, MAX_TOP_LOGPROBS)
    device = next(model.parameters()).device
    prompt_text = request.prompt if isinstance(request.prompt, str) else tokenizer.decode(ids)
    eos = tokenizer.eos_token_id
    if n_new:
        prompt = torch.tensor([ids], device=device)  # (1, T)
        rows = generate_ids(model, prompt, config.replace(max_new_tokens=n_new), eos_token_id=eos)
    else:
        rows = [[] for _ in range(config.num_candidates)]
    choices = []
    for new in rows:
        # generate_ids cut each row before its end-of-text; that token was generated all the same, and an
        # evaluation harness counts on one entry per generated token (lm-eval drops the last), so it stays
        ended = config.stop_at_eos and eos is not None and len(new) < n_new
        new, new_text, stopped = _cut_at_stop(tokenizer, list(new), request.stop)
        new = [*new, eos] if ended and not stopped else new
        full = ids + new
        logp = (
            model(input_ids=torch.tensor([full], device=device)).logits[0].float().log_softmax(-1)
        )  # (T, V)
        chosen = logp[:-1].gather(1, torch.tensor(full[1:], device=device)[:, None]).squeeze(1)  # (T-1,)
        token_logprobs: list[float | None] = [None, *chosen.tolist()]
        top: list[dict[str, float] | None] = [None] * len(full)  # none asked for (logprobs=0): null
        if top_n:
            values, indices = logp[:-1].topk(top_n, dim=-1)  # (T-1, top_n)
            for t, (vals, idx) in enumerate(zip(values.tolist(), indices.tolist(), strict=True), start=1):
                alternatives = {tokenizer.decode([i]): v for i, v in zip(idx, vals, strict=True)}
                alternatives.setdefault(tokenizer.decode([full[t]]), token_logprobs[t])  # the chosen one too
                top[t] = alternatives
        start = 0 if request.echo else len(ids)
        finished = stopped or ended
        choices.append(
            ScoredChoice(
                text=(prompt_text if request.echo else "") + new_text,
                finish_reason="stop" if finished else "length",
                prompt_tokens=len(ids),
                completion_tokens=len(new),
                logprobs=TokenLogprobs(
                    tokens=[tokenizer.decode([t]) for t in full[start:]],
                    token_logprobs=token_logprobs[start:],
                    top_logprobs=top[start:],
                    text_offset=_offsets(tokenizer, full, start),
                ),
            )
        )
    return choices
