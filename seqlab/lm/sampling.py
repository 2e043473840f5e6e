"""The next token from a step's logits: repetition penalty, temperature, top-k, top-p, argmax or a sample.

Per step, for each candidate::

    logits (N, V) -> repetition penalty -> [sample: / temperature -> top-k -> top-p] -> argmax | sample

Pure torch; :class:`seqlab.lm.generate.RunningBatch` applies it to every request's rows.
"""

from __future__ import annotations

import torch

from seqlab.lm.config import DecodingParams

__all__ = [
    "apply_repetition_penalty",
    "choose_tokens",
    "filter_top_k",
    "filter_top_p",
    "next_token_scores",
]


def apply_repetition_penalty(logits: torch.Tensor, history: torch.Tensor, penalty: float) -> torch.Tensor:
    """Penalize every token id present in ``history`` (CTRL, as in transformers).

    Args:
        logits: ``(N, V)`` next-token logits.
        history: ``(N, T)`` token ids seen so far (prompt and output).
        penalty: > 1 discourages repeats; 1.0 returns ``logits`` unchanged.
    """
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, history)  # (N, T)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    # A penalty near 0 (5e-324 is 0 in float32) divides by ~0: keep the scores finite and ordered.
    finite = torch.finfo(seen.dtype)
    seen = torch.nan_to_num(seen, nan=0.0, posinf=finite.max, neginf=finite.min)
    return logits.scatter(1, history, seen)


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the ``k`` largest logits of each row to -inf (``k`` = 0 or >= V: unchanged)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (N, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the nucleus: the most likely tokens whose cumulative probability first reaches ``p``.

    A token stays when the probability mass of the tokens ranked above it is still below ``p``, so the
    most likely token always stays.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (N, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # (N, V)
    drop_sorted = mass_before >= p
    drop_sorted[:, 0] = False  # the most likely token always stays (a p that is 0 in float32 too)
    drop = drop_sorted.scatter(1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token_scores(logits: torch.Tensor, history: torch.Tensor, opts: DecodingParams) -> torch.Tensor:
    """Processed ``(N, V)`` scores the next token is chosen from (argmax, or sampled from their softmax)."""
    scores = apply_repetition_penalty(logits.float(), history, opts.repetition_penalty)
    if opts.strategy == "greedy":
        return scores
    # The best token at 0 before dividing: a tiny temperature (1e-40) then sends the others to -inf (the
    # greedy limit it stands for) instead of overflowing every score to +-inf and the softmax to NaN.
    scores = (scores - scores.amax(dim=-1, keepdim=True)) / opts.temperature
    scores = filter_top_k(scores, opts.top_k)
    return filter_top_p(scores, opts.top_p)


def choose_tokens(
    scores: torch.Tensor, greedy: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The next token of each row of processed ``(N, V)`` scores: their argmax, or a sample from their
    softmax. A row whose distribution is numerically degenerate (no finite, positive mass: what extreme but
    valid decoding values can leave) takes its argmax: the defined rule, instead of a NaN error."""
    best = scores.argmax(dim=-1)  # (N,)
    if greedy:
        return best
    probs = scores.softmax(dim=-1)  # (N, V)
    usable = torch.isfinite(probs).all(dim=-1) & (probs.sum(dim=-1) > 0)  # (N,)
    if not usable.all():
        probs = torch.where(
            usable[:, None], probs, torch.nn.functional.one_hot(best, probs.shape[-1]).to(probs)
        )
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
