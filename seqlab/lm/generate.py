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
    "RunningBatch",
    "apply_repetition_penalty",
    "choose_tokens",
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


def _positions(mask: torch.Tensor, max_position: int) -> torch.Tensor:
    """(N, T) position ids that count real tokens only, so a padded row sees the positions it would alone."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0, max=max_position)


def context_limit(model: Any) -> int | None:
    """The model's maximum sequence length (prompt + new tokens), when its config says."""
    cfg = getattr(model, "config", None)
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


def _kv_pairs(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Per layer (keys, values), each ``(N, heads, T, d)``; None for caches that cannot be merged.

    Only full-attention caches can be padded and joined (a sliding-window or recurrent layer cannot).
    transformers >= 4.56 keeps ``cache.layers``; older releases ``key_cache``/``value_cache`` or tuples.
    """
    layers = getattr(cache, "layers", None)
    if layers is not None:
        if not all(type(layer).__name__ == "DynamicLayer" for layer in layers):
            return None
        return [(layer.keys, layer.values) for layer in layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache, strict=True))
    if isinstance(cache, tuple):
        return [(layer[0], layer[1]) for layer in cache]
    return None


def _make_cache(pairs: list[tuple[torch.Tensor, torch.Tensor]], like: Any) -> Any:
    """A cache of the same kind as ``like`` holding ``pairs``."""
    if isinstance(like, tuple):
        return tuple(pairs)
    from transformers import DynamicCache

    if hasattr(like, "layers"):
        return DynamicCache(pairs)
    return DynamicCache.from_legacy_cache(tuple(pairs))


def _left_pad(x: torch.Tensor, width: int, value: int | torch.Tensor = 0, dim: int = 1) -> torch.Tensor:
    """``x`` padded on the left along ``dim`` to ``width`` (``value``: a scalar or a per-row (N, 1) tensor)."""
    missing = width - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    if isinstance(value, torch.Tensor):
        pad = value.expand(*shape)
    else:
        pad = x.new_full(shape, value)
    return torch.cat([pad, x], dim=dim)


@dataclass
class _Group:
    """The rows of one request in a decoding batch: they share options and one random generator."""

    key: Any
    rows: int
    opts: DecodingConfig
    generator: torch.Generator
    done: bool = False


def _generator(device: torch.device, seed: int | None) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class RunningBatch:
    """Rows that decode together in one forward pass per step; requests may join between steps.

    This is continuous batching, the way vLLM and TGI schedule: a request :meth:`add`-ed while others are
    decoding is prefilled on the next :meth:`step` and its rows are merged into the running batch (the
    KV caches left-padded to a common width and masked), so from then on it shares every forward pass
    with the rows already running. A request leaves once all its rows have finished, and the columns
    that only its padding used are trimmed. Every row decodes exactly as it would alone (up to float
    rounding): the mask hides padding, position ids count real tokens only, and the repetition penalty
    never sees a pad.

    A row that finished (end-of-text, or its ``max_new_tokens``) while others of its request continue
    keeps being fed end-of-text and keeps drawing from its request's generator, as it would alone.
    Models whose cache cannot be merged (sliding-window or recurrent layers) still batch, but a new
    request waits until the batch is empty (:meth:`accepts`).

    Args:
        model: a causal LM in eval mode.
        eos_token_id: end-of-text; finished rows emit it. Unknown: rows only stop at ``max_new_tokens``.
        pad_token_id: the id left padding holds (default: ``eos_token_id``, else 0; it is masked anyway).
        use_cache: keep a KV cache (else every step re-runs the whole prefix).
        logits_hook: ``hook(raw_logits (N, V), scores (N, V), chosen (N,))`` at every step.
    """

    def __init__(
        self,
        model: Any,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        use_cache: bool = True,
        logits_hook: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
    ) -> None:
        params = inspect.signature(model.forward).parameters
        self.model = model
        self.device = next(model.parameters()).device
        self.eos = eos_token_id
        self.pad = (
            pad_token_id if pad_token_id is not None else (eos_token_id if eos_token_id is not None else 0)
        )
        self.use_cache = use_cache
        self.logits_hook = logits_hook
        # Finished rows keep being fed: their positions are capped at the last one the model knows.
        self.max_position = (context_limit(model) or 2**31) - 1
        # transformers 5 renamed the cache argument and output from ``past_key_values`` to ``cache``.
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.keep_arg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        self.groups: list[_Group] = []  # in row order
        self.joining: list[tuple[_Group, torch.Tensor, torch.Tensor]] = []  # (group, ids (n, P), mask (n, P))
        self.mergeable = True  # False once the model returned a cache we cannot pad and join
        self._empty()

    def _empty(self) -> None:
        long = {"dtype": torch.long, "device": self.device}
        self.ids = torch.empty(0, 0, **long)  # (N, T) left-padded tokens so far (prompt + chosen)
        self.mask = torch.empty(0, 0, **long)  # (N, T) 1 on real tokens
        self.history = torch.empty(0, 0, **long)  # (N, T) ids with pads pointing at a real token of the row
        self.cache: Any = None  # covers ids[:, :-1]: the last chosen tokens are fed on the next step
        self.fed = 0  # columns of ``ids`` already in the cache
        self.steps = torch.empty(0, **long)  # (N,) tokens chosen per row
        self.max_new = torch.empty(0, **long)  # (N,)
        self.stop_at_eos = torch.empty(0, dtype=torch.bool, device=self.device)  # (N,)
        self.finished = torch.empty(0, dtype=torch.bool, device=self.device)  # (N,)

    def __len__(self) -> int:
        """Requests decoding or waiting to join."""
        return sum(not g.done for g in self.groups) + len(self.joining)

    @property
    def rows(self) -> int:
        """Rows decoding or waiting to join (what a batch-size limit counts)."""
        return sum(g.rows for g in self.groups if not g.done) + sum(g.rows for g, _, _ in self.joining)

    def accepts(self) -> bool:
        """Whether a new request can join now (always, unless the model's cache cannot be merged)."""
        return self.mergeable or not self.groups

    def add(
        self, key: Any, ids: torch.Tensor, opts: DecodingConfig, mask: torch.Tensor | None = None
    ) -> None:
        """Queue a request: ``ids`` ``(1, T)`` (repeated ``num_candidates`` times) or ``(n, T)`` rows that
        share ``opts`` and one generator; ``mask`` marks real tokens when the rows are left-padded."""
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"input_ids must be a non-empty (N, T) tensor (got shape {tuple(ids.shape)})")
        if not self.accepts():
            raise RuntimeError("this model's cache cannot be merged: add requests when the batch is empty")
        ids = ids.to(self.device)
        mask = torch.ones_like(ids) if mask is None else mask.to(self.device)
        if ids.shape[0] == 1 and opts.num_candidates > 1:
            ids, mask = ids.repeat(opts.num_candidates, 1), mask.repeat(opts.num_candidates, 1)
        group = _Group(key, ids.shape[0], opts, _generator(self.device, opts.seed))
        self.joining.append((group, ids, mask))

    def cancel(self, key: Any) -> None:
        """Stop decoding request ``key`` (its client went away, or a stop string ended it); it leaves now."""
        self.joining = [j for j in self.joining if j[0].key != key]
        for g in self.groups:
            if g.key == key:
                g.done = True
        self._drop([not g.done for g in self.groups])

    def _call(self, input_ids: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> Any:
        if self.keep_arg:
            kwargs[self.keep_arg] = 1  # only the last position's logits are needed
        positions = _positions(mask, self.max_position)
        return self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions[:, -input_ids.shape[1] :],
            **kwargs,
        )

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, cache: Any, fed: int
    ) -> tuple[torch.Tensor, Any]:
        """Last-position logits (N, V) and the new cache, feeding ``ids[:, fed:]``."""
        if not self.use_cache:
            return self._call(ids, mask, use_cache=False).logits[:, -1, :], None
        out = self._call(ids[:, fed:], mask, use_cache=True, **{self.cache_arg: cache})
        new_cache = getattr(out, "cache", None)
        return out.logits[:, -1, :], new_cache if new_cache is not None else getattr(
            out, "past_key_values", None
        )

    def _admit(self) -> torch.Tensor:
        """Prefill the joining requests together and merge them into the batch; their logits (n, V)."""
        joining, self.joining = self.joining, []
        width = max(ids.shape[1] for _, ids, _ in joining)
        ids = torch.cat([_left_pad(i, width, self.pad) for _, i, _ in joining])  # (n, P)
        mask = torch.cat([_left_pad(m, width, 0) for _, _, m in joining])  # (n, P)
        logits, cache = self._forward(ids, mask, None, 0)
        history = torch.where(mask.bool(), ids, ids[:, -1:])  # pads point at the row's last prompt token
        rows = ids.shape[0]
        max_new = torch.cat([ids.new_full((g.rows,), g.opts.max_new_tokens) for g, _, _ in joining])
        stop_at_eos = torch.cat(
            [
                mask.new_full((g.rows,), g.opts.stop_at_eos and self.eos is not None, dtype=torch.bool)
                for g, _, _ in joining
            ]
        )
        if not self.groups:
            self.ids, self.mask, self.history, self.cache, self.fed = ids, mask, history, cache, width
        else:
            new_pairs = _kv_pairs(cache) if self.use_cache else None
            old_pairs = _kv_pairs(self.cache) if self.use_cache else None
            width = max(self.ids.shape[1], width)
            self.ids = torch.cat([_left_pad(self.ids, width, self.pad), _left_pad(ids, width, self.pad)])
            self.history = torch.cat([_left_pad(h, width, h[:, -1:]) for h in (self.history, history)])
            self.mask = torch.cat([_left_pad(self.mask, width, 0), _left_pad(mask, width, 0)])
            if self.use_cache:
                assert new_pairs is not None and old_pairs is not None  # accepts() checked mergeable
                merged = [
                    (
                        torch.cat([_left_pad(k0, width, 0, 2), _left_pad(k1, width, 0, 2)]),
                        torch.cat([_left_pad(v0, width, 0, 2), _left_pad(v1, width, 0, 2)]),
                    )
                    for (k0, v0), (k1, v1) in zip(old_pairs, new_pairs, strict=True)
                ]
                self.cache = _make_cache(merged, self.cache)
            self.fed = width
        self.steps = torch.cat([self.steps, ids.new_zeros(rows)])
        self.max_new = torch.cat([self.max_new, max_new])
        self.stop_at_eos = torch.cat([self.stop_at_eos, stop_at_eos])
        self.finished = torch.cat([self.finished, torch.zeros(rows, dtype=torch.bool, device=self.device)])
        self.groups.extend(g for g, _, _ in joining)
        if self.use_cache and _kv_pairs(self.cache) is None:
            self.mergeable = False
        return logits

    @torch.inference_mode()
    def step(self) -> list[tuple[Any, torch.Tensor]]:
        """One decoding step for every row: ``(key, (rows,) chosen ids)`` per request still decoding.

        The requests that were added since the last step are prefilled and join first. A request
        appears here for the last time on the step where all its rows finished; then it leaves.
        """
        parts = []
        if self.groups:
            logits, cache = self._forward(self.ids, self.mask, self.cache, self.fed)
            self.cache, self.fed = cache, self.ids.shape[1]
            parts.append(logits)
        if self.joining:
            parts.append(self._admit())
        if not parts:
            return []
        logits = torch.cat(parts) if len(parts) > 1 else parts[0]  # (N, V)
        n_rows = logits.shape[0]
        chosen = torch.empty(n_rows, dtype=torch.long, device=self.device)  # (N,)
        hooked, start = [], 0
        for g in self.groups:
            rows = slice(start, start + g.rows)
            start += g.rows
            scores = next_token_scores(logits[rows], self.history[rows], g.opts)  # (n, V)
            chosen[rows] = choose_tokens(scores, g.opts.strategy == "greedy", g.generator)
            hooked.append(scores)
        if self.eos is not None:
            chosen = chosen.masked_fill(self.finished, self.eos)
        self.steps += 1
        self.finished |= self.stop_at_eos & (chosen == (self.eos if self.eos is not None else -1))
        self.finished |= self.max_new <= self.steps
        if self.logits_hook is not None:
            self.logits_hook(logits, torch.cat(hooked, dim=0), chosen)
        out, start, keep = [], 0, []
        for g in self.groups:
            rows = slice(start, start + g.rows)
            start += g.rows
            if not g.done:
                out.append((g.key, chosen[rows]))
                g.done = bool(self.finished[rows].all())
            keep.append(not g.done)
        self.ids = torch.cat([self.ids, chosen[:, None]], dim=1)  # (N, T+1)
        self.history = torch.cat([self.history, chosen[:, None]], dim=1)
        self.mask = torch.cat([self.mask, self.mask.new_ones(n_rows, 1)], dim=1)
        self._drop(keep)
        return out

    def _drop(self, keep: list[bool]) -> None:
        """Remove finished requests (when the cache allows) and the columns only their padding used."""
        if all(keep):
            return
        if not any(keep):
            self.groups = []
            self._empty()
            return
        if self.use_cache and not self.mergeable:
            return  # the cache cannot be cut: finished rows ride along, fed end-of-text
        row_keep = torch.cat(
            [torch.full((g.rows,), k, dtype=torch.bool) for g, k in zip(self.groups, keep, strict=True)]
        )
        idx = row_keep.nonzero().squeeze(1).to(self.device)
        self.groups = [g for g, k in zip(self.groups, keep, strict=True) if k]
        real = self.mask[idx].any(dim=0).nonzero()
        first = int(real[0]) if len(real) else 0  # leading columns that are padding in every kept row
        for name in ("ids", "mask", "history"):
            setattr(self, name, getattr(self, name)[idx, first:])
        for name in ("steps", "max_new", "stop_at_eos", "finished"):
            setattr(self, name, getattr(self, name)[idx])
        if self.use_cache:
            pairs = _kv_pairs(self.cache)
            assert pairs is not None
            self.cache = _make_cache([(k[idx, :, first:], v[idx, :, first:]) for k, v in pairs], self.cache)
        self.fed -= first


def _decode(
    model: Any,
    requests: list[tuple[torch.Tensor, torch.Tensor, DecodingConfig]],
    eos_token_id: int | None,
    pad_token_id: int | None = None,
    logits_hook: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> Iterator[torch.Tensor]:
    """Decode fixed requests together (a :class:`RunningBatch` nobody joins).

    Args:
        requests: ``(ids (n, T), mask (n, T), opts)`` per request; its n rows share ``opts``.

    Yields:
        ``(N,)`` token ids of each step over all requests' rows in order. A row whose request has
        finished keeps emitting ``eos_token_id`` (when known); the loop ends when every row has finished.
    """
    batch = RunningBatch(
        model,
        eos_token_id,
        pad_token_id,
        use_cache=all(o.use_cache for _, _, o in requests),
        logits_hook=logits_hook,
    )
    offsets, start = [], 0
    for key, (ids, mask, opts) in enumerate(requests):
        batch.add(key, ids, opts, mask)
        n = ids.shape[0] if ids.shape[0] > 1 or opts.num_candidates == 1 else opts.num_candidates
        offsets.append((start, start + n))
        start += n
    fill = eos_token_id if eos_token_id is not None else 0
    while len(batch):
        chosen = torch.full((start,), fill, dtype=torch.long, device=batch.device)  # (N,)
        for key, tokens in batch.step():
            chosen[offsets[key][0] : offsets[key][1]] = tokens
        yield chosen


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
    model.eval()
    requests = [
        (
            torch.tensor([p], dtype=torch.long, device=device),
            torch.ones(1, len(p), dtype=torch.long, device=device),
            o,
        )
        for p, o in zip(fitted, opts, strict=True)
    ]
    yield from _decode(model, requests, eos_token_id, pad_token_id)


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
    limit = context_limit(model)
    if limit is not None:
        _fit_context(model, [0], opts.max_new_tokens)  # raises when max_new_tokens leaves no room
        ids = ids[:, -(limit - opts.max_new_tokens) :]
    yield from _decode(model, [(ids, torch.ones_like(ids), opts)], eos_token_id, logits_hook=logits_hook)


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
