"""Text generation from a causal LM: greedy or sampled decoding with a KV cache, streaming, candidates.

Pure (no Ray): the CLI, the report and the Serve app call these functions. The decoding loop is our own
(a few lines, so every step is visible and testable) and matches ``transformers``' ``generate`` where the
two overlap (greedy, repetition penalty; checked in the tests). Per step, for each candidate:

    logits (N, V) -> repetition penalty -> [sample: / temperature -> top-k -> top-p] -> argmax | sample

The decoding parameters are :class:`seqlab.lm.config.DecodingConfig` (one pydantic model shared with the
CLI, the report and the HTTP schemas). Several prompts decode together in one forward pass per step:
prompts are left-padded, with an attention mask and position ids, so each row decodes exactly as it
would alone (:func:`iter_batch_token_ids`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from seqlab.lm.config import DecodingConfig, DecodingParams

__all__ = [
    "DecodingConfig",
    "apply_repetition_penalty",
    "context_limit",
    "filter_top_k",
    "filter_top_p",
    "generate",
    "generate_ids",
    "iter_batch_token_ids",
    "iter_token_ids",
    "next_token_scores",
    "prompt_ids",
    "stream",
]

log = logging.getLogger(__name__)


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
    drop = drop_sorted.scatter(1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token_scores(logits: torch.Tensor, history: torch.Tensor, opts: DecodingParams) -> torch.Tensor:
    """Processed ``(N, V)`` scores the next token is chosen from (argmax, or sampled from their softmax)."""
    scores = apply_repetition_penalty(logits.float(), history, opts.repetition_penalty)
    if opts.strategy == "greedy":
        return scores
    scores = scores / opts.temperature
    scores = filter_top_k(scores, opts.top_k)
    return filter_top_p(scores, opts.top_p)


class _Forward:
    """Last-position logits from a causal LM, with or without a KV cache, for left-padded rows.

    ``mask`` (N, T) is 1 on real tokens and 0 on left padding; position ids count real tokens only, so a
    padded row sees exactly the positions it would see alone. transformers 5 renamed the cache argument
    and output from ``past_key_values`` to ``cache``; both spellings are supported.
    """

    def __init__(self, model: Any, mask: torch.Tensor) -> None:
        params = inspect.signature(model.forward).parameters
        self.model = model
        # Rows of a batch finish at different steps and keep being fed end-of-text: their positions are
        # capped at the last one the model knows (their outputs are discarded).
        self.max_position = (context_limit(model) or 2**31) - 1
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.keep_arg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        self.cache: Any = None
        self.mask = mask  # (N, T): grows by one column per step

    def _call(self, input_ids: torch.Tensor, **kwargs: Any) -> Any:
        positions = (self.mask.cumsum(dim=1) - 1).clamp(min=0, max=self.max_position)  # (N, T_total)
        if self.keep_arg:
            kwargs[self.keep_arg] = 1  # only the last position's logits are needed
        return self.model(
            input_ids=input_ids,
            attention_mask=self.mask,
            position_ids=positions[:, -input_ids.shape[1] :],
            **kwargs,
        )

    def cached(self, new_ids: torch.Tensor) -> torch.Tensor:
        """Feed only ``new_ids`` (N, t); the mask already covers cached + new tokens."""
        out = self._call(new_ids, use_cache=True, **{self.cache_arg: self.cache})
        cache = getattr(out, "cache", None)
        self.cache = cache if cache is not None else getattr(out, "past_key_values", None)
        return out.logits[:, -1, :]

    def full(self, ids: torch.Tensor) -> torch.Tensor:
        """Re-run the whole ``ids`` (N, T) prefix (no cache)."""
        return self._call(ids, use_cache=False).logits[:, -1, :]

    def grow(self, n: int) -> None:
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], n)], dim=1)


def context_limit(model: Any) -> int | None:
    """The model's maximum sequence length (prompt + new tokens), when its config says."""
    cfg = getattr(model, "config", None)
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


@dataclass
class _Group:
    """The rows of one request in a decoding batch: rows ``[start, stop)`` share options and RNG."""

    start: int
    stop: int
    opts: DecodingConfig
    generator: torch.Generator


def _generator(device: torch.device, seed: int | None) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


@torch.inference_mode()
def _decode(
    model: Any,
    ids: torch.Tensor,
    mask: torch.Tensor,
    groups: list[_Group],
    eos_token_id: int | None,
    logits_hook: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> Iterator[torch.Tensor]:
    """The decoding loop shared by every entry point: one forward pass per step for all rows.

    Args:
        ids: ``(N, T)`` left-padded prompt ids; ``mask`` ``(N, T)`` marks the real tokens.
        groups: row ranges with their decoding options; together they cover all N rows.

    Yields:
        ``(N,)`` token ids of each step. A row whose group has reached its ``max_new_tokens``, or that
        produced end-of-text, keeps emitting ``eos_token_id`` (when known); the loop ends when every row
        has finished.
    """
    device = ids.device
    n_rows = ids.shape[0]
    steps = max(g.opts.max_new_tokens for g in groups)
    max_new = torch.empty(n_rows, dtype=torch.long, device=device)  # (N,)
    for g in groups:
        max_new[g.start : g.stop] = g.opts.max_new_tokens
    stop_at_eos = torch.zeros(n_rows, dtype=torch.bool, device=device)
    for g in groups:
        stop_at_eos[g.start : g.stop] = g.opts.stop_at_eos and eos_token_id is not None
    use_cache = all(g.opts.use_cache for g in groups)
    # The repetition penalty must not see left padding: pad slots point at the row's last prompt token,
    # whose penalty is applied anyway (the same token penalized twice gets the same value).
    history = torch.where(mask.bool(), ids, ids[:, -1:])  # (N, T)
    finished = torch.zeros(n_rows, dtype=torch.bool, device=device)  # (N,)
    forward = _Forward(model, mask)
    step_input = ids
    for step in range(steps):
        logits = forward.cached(step_input) if use_cache else forward.full(ids)  # (N, V)
        chosen = torch.empty(n_rows, dtype=torch.long, device=device)  # (N,)
        hooked = [] if logits_hook is not None else None
        for g in groups:
            rows = slice(g.start, g.stop)
            scores = next_token_scores(logits[rows], history[rows], g.opts)  # (n, V)
            if g.opts.strategy == "greedy":
                chosen[rows] = scores.argmax(dim=-1)
            else:
                probs = scores.softmax(dim=-1)
                chosen[rows] = torch.multinomial(probs, 1, generator=g.generator).squeeze(1)
            if hooked is not None:
                hooked.append(scores)
        if eos_token_id is not None:
            chosen = chosen.masked_fill(finished, eos_token_id)
        finished |= stop_at_eos & (chosen == (eos_token_id if eos_token_id is not None else -1))
        finished |= max_new <= step + 1
        if logits_hook is not None:
            logits_hook(logits, torch.cat(hooked, dim=0), chosen)
        yield chosen
        if bool(finished.all()):
            return
        ids = torch.cat([ids, chosen[:, None]], dim=1)  # (N, T+1)
        history = torch.cat([history, chosen[:, None]], dim=1)
        forward.grow(1)
        step_input = chosen[:, None]  # (N, 1): with the cache only the new token is fed


def _fit_context(model: Any, prompt: list[int], max_new_tokens: int) -> list[int]:
    limit = context_limit(model)
    if limit is None:
        return prompt
    if max_new_tokens >= limit:
        raise ValueError(f"max_new_tokens must be < the model's context of {limit} tokens")
    return prompt[-(limit - max_new_tokens) :]  # keep the prompt's end so everything fits


def iter_batch_token_ids(
    model: Any,
    prompts: Sequence[Sequence[int]],
    opts: Sequence[DecodingConfig],
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> Iterator[torch.Tensor]:
    """Decode several prompts, each with its own options, in one forward pass per step.

    Prompt ``i`` gets ``opts[i].num_candidates`` consecutive rows; prompts are left-padded with
    ``pad_token_id`` (default: ``eos_token_id``, else 0) and masked, so each row decodes as it would
    alone. A prompt longer than the context allows is cut from the left.

    Yields:
        ``(N,)`` token ids per step, N = the sum of ``num_candidates``.
    """
    if len(prompts) != len(opts) or not prompts:
        raise ValueError("iter_batch_token_ids needs one DecodingConfig per prompt, and at least one prompt")
    device = next(model.parameters()).device
    fitted = [_fit_context(model, list(p), o.max_new_tokens) for p, o in zip(prompts, opts, strict=True)]
    if any(not p for p in fitted):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in fitted)
    pad = pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
    rows, masks, groups = [], [], []
    for prompt, o in zip(fitted, opts, strict=True):
        start = len(rows)
        for _ in range(o.num_candidates):
            rows.append([pad] * (width - len(prompt)) + prompt)
            masks.append([0] * (width - len(prompt)) + [1] * len(prompt))
        groups.append(_Group(start, len(rows), o, _generator(device, o.seed)))
    ids = torch.tensor(rows, dtype=torch.long, device=device)  # (N, T)
    mask = torch.tensor(masks, dtype=torch.long, device=device)  # (N, T)
    model.eval()
    yield from _decode(model, ids, mask, groups, eos_token_id)


def iter_token_ids(
    model: Any,
    input_ids: torch.Tensor,
    opts: DecodingConfig,
    eos_token_id: int | None = None,
    logits_hook: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> Iterator[torch.Tensor]:
    """Decode one prompt (``(1, T)``, repeated ``num_candidates`` times) or N unpadded rows together.

    Args:
        model: a causal LM (GPT-2 or any ``AutoModelForCausalLM``).
        input_ids: ``(1, T)`` or ``(N, T)`` prompt ids.
        opts: decoding options; all rows share them (and one random generator).
        eos_token_id: end-of-text id: finished candidates keep emitting it; the loop stops when all have finished.
        logits_hook: called as ``hook(raw_logits (N, V), scores (N, V), chosen (N,))`` at every step,
            to inspect decoding (the tests compare cached and uncached logits with it).

    Yields:
        ``(N,)`` token ids of step t.
    """
    if input_ids.ndim != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must be a non-empty (N, T) tensor (got shape {tuple(input_ids.shape)})")
    model.eval()
    device = next(model.parameters()).device
    ids = input_ids.to(device)
    if ids.shape[0] == 1 and opts.num_candidates > 1:
        ids = ids.repeat(opts.num_candidates, 1)  # (N, T)
    limit = context_limit(model)
    if limit is not None:
        _fit_context(model, [0], opts.max_new_tokens)  # raises when max_new_tokens leaves no room
        ids = ids[:, -(limit - opts.max_new_tokens) :]
    groups = [_Group(0, ids.shape[0], opts, _generator(device, opts.seed))]
    yield from _decode(model, ids, torch.ones_like(ids), groups, eos_token_id, logits_hook)


def _cut(rows: list[list[int]], eos_token_id: int | None, stop_at_eos: bool) -> list[list[int]]:
    if eos_token_id is None or not stop_at_eos:
        return rows
    return [row[: row.index(eos_token_id)] if eos_token_id in row else row for row in rows]


def generate_ids(
    model: Any, input_ids: torch.Tensor, opts: DecodingConfig, eos_token_id: int | None = None
) -> list[list[int]]:
    """New token ids per candidate, each cut before its first end-of-text."""
    steps = list(iter_token_ids(model, input_ids, opts, eos_token_id))
    if not steps:
        return [[] for _ in range(max(opts.num_candidates, input_ids.shape[0]))]
    table = torch.stack(steps, dim=1).tolist()  # (N, new)
    return _cut(table, eos_token_id, opts.stop_at_eos)


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of ``prompt``; an empty prompt starts a new document, as after <|endoftext|> in training."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    if not ids:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ValueError("empty prompt and the tokenizer has no bos/eos token to start from")
        ids = [start]
    return list(ids)


def generate(model: Any, tokenizer: Any, prompt: str, opts: DecodingConfig | None = None) -> list[str]:
    """Generate ``opts.num_candidates`` continuations of ``prompt`` (the prompt itself not included)."""
    opts = opts or DecodingConfig()
    ids = torch.tensor([prompt_ids(tokenizer, prompt)], dtype=torch.long)  # (1, T)
    rows = generate_ids(model, ids, opts, tokenizer.eos_token_id)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in rows]


class TextDelta:
    """Turns one candidate's tokens into text pieces whose concatenation is the decoded text.

    Byte-level BPE can end a step in the middle of a UTF-8 character; such a piece is held back until
    the character is complete. ``stop`` strings end the candidate: the text is cut before the first one,
    and text that might be the start of one is held back until it is known not to be.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.tokens: list[int] = []
        self.emitted = ""
        self.text = ""
        self.stopped = False

    def push(self, token: int) -> str:
        """Add a token; returns the new text that is safe to show (possibly empty)."""
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # wait for the rest of the character
            return ""
        return self._advance(text, final=False)

    def finish(self) -> str:
        """The rest of the text once the candidate has ended."""
        if self.stopped:
            return ""
        return self._advance(self.tokenizer.decode(self.tokens, skip_special_tokens=True), final=True)

    def _advance(self, text: str, final: bool) -> str:
        for s in self.stop:
            cut = text.find(s)
            if cut >= 0:
                text, final, self.stopped = text[:cut], True, True
        self.text = text
        safe = text if final else text[: max(len(self.emitted), len(text) - self._hold())]
        if not safe.startswith(self.emitted):  # decoding changed earlier text (rare): show nothing new
            return ""
        piece, self.emitted = safe[len(self.emitted) :], safe
        return piece

    def _hold(self) -> int:
        return max((len(s) - 1 for s in self.stop), default=0)


def stream(model: Any, tokenizer: Any, prompt: str, opts: DecodingConfig | None = None) -> Iterator[str]:
    """Yield the continuation of ``prompt`` piece by piece as tokens are generated (one candidate).

    Pieces are held back while they end in an incomplete UTF-8 sequence, so their concatenation equals
    the non-streamed text.
    """
    opts = opts or DecodingConfig()
    if opts.num_candidates != 1:
        raise ValueError(f"num_candidates must be 1 when streaming (got {opts.num_candidates})")
    eos = tokenizer.eos_token_id
    delta = TextDelta(tokenizer)
    ids = torch.tensor([prompt_ids(tokenizer, prompt)], dtype=torch.long)
    for chosen in iter_token_ids(model, ids, opts, eos):
        token = int(chosen[0])
        if eos is not None and opts.stop_at_eos and token == eos:
            break
        piece = delta.push(token)
        if piece:
            yield piece
    rest = delta.finish()
    if rest:
        yield rest
