"""Token decoding from a causal LM: greedy or sampled, with a KV cache, candidates, continuous batching.

Pure (no Ray): :class:`seqlab.lm.generator.Generator` (the CLI, the demo, the Serve app) decodes through
:class:`RunningBatch`; the report and the log-probabilities through :func:`generate_ids`. The loop is our own
(a few lines, so every step is visible and testable) and matches ``transformers``' ``generate`` where the
two overlap (greedy, repetition penalty; checked in the tests). Per step, for each candidate, the next
token comes from its logits as :mod:`seqlab.lm.sampling` rules.

The decoding parameters are :class:`seqlab.lm.config.DecodingConfig` (one pydantic model shared with the
CLI, the report and the HTTP schemas). Several prompts decode together in one forward pass per step:
prompts are left-padded, with an attention mask and position ids, so each row decodes exactly as it
would alone (:class:`RunningBatch`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from seqlab.lm.config import DecodingConfig
from seqlab.lm.requests import FinishReason, prompt_room
from seqlab.lm.sampling import choose_tokens, next_token_scores

__all__ = [
    "DecodingConfig",
    "RunningBatch",
    "context_limit",
    "generate_ids",
    "iter_token_ids",
]

log = logging.getLogger(__name__)


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
    def step(self) -> list[tuple[Any, torch.Tensor, list[FinishReason | None]]]:
        """One decoding step for every row: ``(key, (rows,) chosen ids, finish reasons)`` per request still
        decoding. A row's reason is set on the step it finishes, None otherwise: ``"stop"`` (it chose
        end-of-text; that token is not text) or ``"length"`` (its ``max_new_tokens``-th token).

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
        at_eos = self.stop_at_eos & (chosen == (self.eos if self.eos is not None else -1))
        finishing = ~self.finished & (at_eos | (self.max_new <= self.steps))
        self.finished |= finishing
        reasons: list[FinishReason | None] = [
            ("stop" if eos else "length") if ends else None
            for ends, eos in zip(finishing.tolist(), at_eos.tolist(), strict=True)
        ]
        if self.logits_hook is not None:
            self.logits_hook(logits, torch.cat(hooked, dim=0), chosen)
        out, start, keep = [], 0, []
        for g in self.groups:
            rows = slice(start, start + g.rows)
            start += g.rows
            if not g.done:
                out.append((g.key, chosen[rows], reasons[rows]))
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
        for key, tokens, _ in batch.step():
            chosen[offsets[key][0] : offsets[key][1]] = tokens
        yield chosen


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
    room = prompt_room(context_limit(model), opts.max_new_tokens)
    if room is not None:
        ids = ids[:, -room:]  # keep the prompt's end so everything fits
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
