"""Text generation from a causal LM: greedy or sampled decoding with a KV cache, streaming, candidates.

Pure (no Ray): the CLI, the report and the Serve app call these functions. The decoding loop is our own
(a few lines, so every step is visible and testable) and matches ``transformers``' ``generate`` where the
two overlap (greedy, repetition penalty; checked in the tests). Per step, for each candidate:

    logits (N, V) -> repetition penalty -> [sample: / temperature -> top-k -> top-p] -> argmax | sample

Defaults follow the seed's table: temperature 0.8 (0.7-1.0), top-k 50 (40-100), top-p 0.92 (0.9-0.95),
repetition penalty 1.2 (1.1-1.3).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = [
    "DecodingOptions",
    "apply_repetition_penalty",
    "filter_top_k",
    "filter_top_p",
    "generate",
    "generate_ids",
    "iter_token_ids",
    "load_generator",
    "next_token_scores",
    "stream",
]

log = logging.getLogger(__name__)

Strategy = Literal["greedy", "sample"]


@dataclass(frozen=True)
class DecodingOptions:
    """How to pick each next token.

    Attributes:
        strategy: ``greedy`` (argmax; temperature/top-k/top-p ignored) or ``sample``.
        temperature: divides the logits before sampling; < 1 sharpens, > 1 flattens.
        top_k: sample only among the k most likely tokens (0 disables).
        top_p: sample only within the nucleus, the smallest set of tokens whose probability mass reaches
            top_p (1.0 disables).
        repetition_penalty: CTRL-style penalty on every token already in the prompt or output
            (positive logits divided by it, negative ones multiplied; 1.0 disables).
        max_new_tokens: tokens to generate per candidate (fewer if end-of-text comes first).
        num_candidates: independent continuations generated together as one batch.
        seed: seed of the sampling generator (same seed, same output); None draws a fresh one.
        use_cache: reuse attention keys/values (KV cache) instead of re-running the whole prefix.
        stop_at_eos: stop a candidate at ``<|endoftext|>`` (benchmarks turn this off).
    """

    strategy: Strategy = "sample"
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.92
    repetition_penalty: float = 1.2
    max_new_tokens: int = 64
    num_candidates: int = 1
    seed: int | None = None
    use_cache: bool = True
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("strategy", self.strategy in ("greedy", "sample"), "must be 'greedy' or 'sample'"),
            ("temperature", self.temperature > 0, "must be > 0"),
            ("top_k", self.top_k >= 0, "must be >= 0 (0 disables it)"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1] (1 disables it)"),
            ("repetition_penalty", self.repetition_penalty > 0, "must be > 0 (1 disables it)"),
            ("max_new_tokens", self.max_new_tokens >= 1, "must be >= 1"),
            ("num_candidates", 1 <= self.num_candidates <= 64, "must be between 1 and 64"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule} (got {getattr(self, name)!r})")


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


def next_token_scores(logits: torch.Tensor, history: torch.Tensor, opts: DecodingOptions) -> torch.Tensor:
    """Processed ``(N, V)`` scores the next token is chosen from (argmax, or sampled from their softmax)."""
    scores = apply_repetition_penalty(logits.float(), history, opts.repetition_penalty)
    if opts.strategy == "greedy":
        return scores
    scores = scores / opts.temperature
    scores = filter_top_k(scores, opts.top_k)
    return filter_top_p(scores, opts.top_p)


class _Forward:
    """Last-position logits from a causal LM, with or without a KV cache.

    transformers 5 renamed the cache argument and output from ``past_key_values`` to ``cache``; both
    spellings are supported so any transformers the project allows works.
    """

    def __init__(self, model: Any) -> None:
        params = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.keep_arg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        self.cache: Any = None

    def _call(self, input_ids: torch.Tensor, total_len: int, **kwargs: Any) -> Any:
        mask = torch.ones(input_ids.shape[0], total_len, dtype=torch.long, device=input_ids.device)
        if self.keep_arg:
            kwargs[self.keep_arg] = 1  # only the last position's logits are needed
        return self.model(input_ids=input_ids, attention_mask=mask, **kwargs)

    def cached(self, new_ids: torch.Tensor, total_len: int) -> torch.Tensor:
        """Feed only ``new_ids`` (N, t); ``total_len`` counts cached + new tokens."""
        out = self._call(new_ids, total_len, use_cache=True, **{self.cache_arg: self.cache})
        cache = getattr(out, "cache", None)
        self.cache = cache if cache is not None else getattr(out, "past_key_values", None)
        return out.logits[:, -1, :]

    def full(self, ids: torch.Tensor) -> torch.Tensor:
        """Re-run the whole ``ids`` (N, T) prefix (no cache)."""
        return self._call(ids, ids.shape[1], use_cache=False).logits[:, -1, :]


def _context_limit(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


@torch.inference_mode()
def iter_token_ids(
    model: Any,
    input_ids: torch.Tensor,
    opts: DecodingOptions,
    eos_token_id: int | None = None,
    logits_hook: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every candidate, one step at a time.

    Args:
        model: a causal LM (``model(input_ids, past_key_values=..., use_cache=...)`` returns ``.logits``).
        input_ids: ``(1, T)`` prompt (repeated for each candidate) or ``(N, T)`` prompts of equal length.
        opts: decoding options.
        eos_token_id: finished candidates keep emitting it; the loop stops when all have finished.
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
    limit = _context_limit(model)
    if limit is not None:
        if opts.max_new_tokens >= limit:
            raise ValueError(f"max_new_tokens must be < the model's context of {limit} tokens")
        ids = ids[:, -(limit - opts.max_new_tokens) :]  # keep the prompt's end so everything fits
    generator = torch.Generator(device=device)
    if opts.seed is None:
        generator.seed()
    else:
        generator.manual_seed(opts.seed)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=device)  # (N,)
    forward = _Forward(model)
    step_input = ids
    for _ in range(opts.max_new_tokens):
        if opts.use_cache:
            logits = forward.cached(step_input, ids.shape[1])  # (N, V)
        else:
            logits = forward.full(ids)  # (N, V)
        scores = next_token_scores(logits, ids, opts)
        if opts.strategy == "greedy":
            chosen = scores.argmax(dim=-1)  # (N,)
        else:
            chosen = torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)
        if eos_token_id is not None and opts.stop_at_eos:
            chosen = chosen.masked_fill(finished, eos_token_id)
            finished |= chosen == eos_token_id
        if logits_hook is not None:
            logits_hook(logits, scores, chosen)
        yield chosen
        ids = torch.cat([ids, chosen[:, None]], dim=1)  # (N, T+1)
        step_input = chosen[:, None]  # (N, 1): with the cache only the new token is fed
        if eos_token_id is not None and opts.stop_at_eos and bool(finished.all()):
            return


def generate_ids(
    model: Any, input_ids: torch.Tensor, opts: DecodingOptions, eos_token_id: int | None = None
) -> list[list[int]]:
    """New token ids per candidate, each cut before its first end-of-text."""
    steps = list(iter_token_ids(model, input_ids, opts, eos_token_id))
    if not steps:
        return [[] for _ in range(max(opts.num_candidates, input_ids.shape[0]))]
    table = torch.stack(steps, dim=1).tolist()  # (N, new)
    if eos_token_id is None or not opts.stop_at_eos:
        return table
    return [row[: row.index(eos_token_id)] if eos_token_id in row else row for row in table]


def _prompt_ids(tokenizer: Any, prompt: str) -> torch.Tensor:
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    if not ids:  # an empty prompt starts a new document, as after <|endoftext|> in training
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ValueError("empty prompt and the tokenizer has no bos/eos token to start from")
        ids = [start]
    return torch.tensor([ids], dtype=torch.long)  # (1, T)


def generate(model: Any, tokenizer: Any, prompt: str, opts: DecodingOptions | None = None) -> list[str]:
    """Generate ``opts.num_candidates`` continuations of ``prompt`` (the prompt itself not included)."""
    opts = opts or DecodingOptions()
    rows = generate_ids(model, _prompt_ids(tokenizer, prompt), opts, tokenizer.eos_token_id)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in rows]


def stream(model: Any, tokenizer: Any, prompt: str, opts: DecodingOptions | None = None) -> Iterator[str]:
    """Yield the continuation of ``prompt`` piece by piece as tokens are generated (one candidate).

    Pieces are decoded from all tokens so far and held back while they end in an incomplete UTF-8
    sequence, so their concatenation equals the non-streamed text.
    """
    opts = opts or DecodingOptions()
    if opts.num_candidates != 1:
        raise ValueError(f"num_candidates must be 1 when streaming (got {opts.num_candidates})")
    eos = tokenizer.eos_token_id
    tokens: list[int] = []
    emitted = ""
    for chosen in iter_token_ids(model, _prompt_ids(tokenizer, prompt), opts, eos):
        token = int(chosen[0])
        if eos is not None and opts.stop_at_eos and token == eos:
            break
        tokens.append(token)
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # byte-level BPE: wait for the rest of the character
            continue
        if text.startswith(emitted):
            piece, emitted = text[len(emitted) :], text
            if piece:
                yield piece
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    if text.startswith(emitted) and len(text) > len(emitted):
        yield text[len(emitted) :]


def load_generator(model_dir: str | Path, device: str | None = None) -> tuple[Any, Any]:
    """Load a generator artifact (a Hugging Face directory from ``seqlab finetune``) for inference.

    Raises:
        FileNotFoundError: ``model_dir`` does not exist or holds no ``config.json``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir} is not a Hugging Face model directory (no config.json); "
            "pass the model/ folder written by 'seqlab finetune'"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    return model, tokenizer
