"""The model deployments: a scorer and a generator, each batching requests dynamically (``@serve.batch``).

Each replica loads its artifact once, on the GPU when Ray gave it one, and runs the model in a worker
thread so its event loop keeps collecting the next batch while the current one computes.

* :class:`ScorerDeployment` — texts from many requests become one ``Scorer.predict`` call (which sorts them
  by length into padded sub-batches). The batch size counts texts, not requests.
* :class:`GeneratorDeployment` — requests decode together, one forward pass per step for all of them
  (``Generator.stream_batch``); every caller gets its own stream of text pieces.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ray import serve

from seqlab.serve.config import BatchOptions

__all__ = ["GeneratorDeployment", "ScorerDeployment", "pick_device"]

log = logging.getLogger("ray.serve")  # Serve writes this logger to the replica logs, with request ids


def pick_device(requested: str) -> str:
    """``cuda`` when asked for, or (``auto``) when Ray assigned this replica a GPU; else ``cpu``."""
    import ray
    import torch

    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was requested but this replica sees no CUDA GPU")
        return "cuda"
    if requested == "auto" and ray.get_gpu_ids() and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _prepare_replica(num_cpus: float, batched: Any, batch: dict[str, Any]) -> BatchOptions:
    """Torch threads = the replica's CPUs; the ``@serve.batch`` method's size and wait from config."""
    import torch

    torch.set_num_threads(max(1, int(num_cpus)))
    opts = BatchOptions.model_validate(batch)
    batched.set_max_batch_size(opts.max_batch_size)
    batched.set_batch_wait_timeout_s(opts.batch_wait_timeout_s)
    return opts


@serve.deployment(name="Scorer")
class ScorerDeployment:
    """Loads a scorer artifact; ``score(texts)`` returns its scores, batched with concurrent callers."""

    def __init__(self, path: str, device: str, num_cpus: float, batch: dict[str, Any]) -> None:
        from seqlab.models import load_scorer

        _prepare_replica(num_cpus, self._score_batch, batch)
        self.device = pick_device(device)
        self.scorer = load_scorer(path, device=self.device)
        self.path = path
        log.info("scorer %s loaded on %s", path, self.device)

    @serve.batch(
        max_batch_size=64, batch_wait_timeout_s=0.005, batch_size_fn=lambda items: sum(map(len, items))
    )
    async def _score_batch(self, requests: list[list[str]]) -> list[list[float]]:
        flat = [text for texts in requests for text in texts]
        scores = await asyncio.to_thread(self.scorer.predict, flat)
        out, start = [], 0
        for texts in requests:
            out.append(scores[start : start + len(texts)])
            start += len(texts)
        return out

    async def score(self, texts: list[str]) -> list[float]:
        return await self._score_batch(texts)

    def prepare(self, texts: list[str]) -> list[str]:
        """The texts as the model sees them (its training-time normalization)."""
        return [self.scorer.prepare(t) for t in texts]

    def describe(self) -> dict[str, Any]:
        manifest = self.scorer.manifest
        return {
            "role": "scorer",
            "artifact": self.path,
            "device": self.device,
            "architecture": manifest.get("architecture"),
            "parameters": manifest.get("parameters"),
            "text_column": self.scorer.config.get("text_column", "text_norm"),
            "normalize": self.scorer.config.get("normalize"),
            "metrics": manifest.get("metrics", {}),
            "created_at": manifest.get("created_at"),
        }


def _next_chunk(
    steps: Iterator[list[list[Any]]], n_requests: int, interval_s: float
) -> list[list[Any]] | None:
    """Decode steps until ``interval_s`` has passed or a candidate finishes; their events merged per request.

    Sending every token on its own costs a message through the handle, the ingress and the proxy per
    token; a few steps per message cut that overhead (vLLM's stream interval) while a finishing request
    is flushed at once. Runs in a worker thread; None when decoding is over.
    """
    merged: list[dict[int, Any]] | None = None
    deadline = time.monotonic() + interval_s
    for step in steps:
        if merged is None:
            merged = [{} for _ in range(n_requests)]
        finishing = False
        for i, events in enumerate(step):
            for ev in events:  # one event per candidate per message: texts joined, the finish kept
                if ev.index in merged[i]:
                    ev = _join(merged[i][ev.index], ev)
                merged[i][ev.index] = ev
                finishing = finishing or ev.finish_reason is not None
        if finishing or time.monotonic() >= deadline:
            break
    return None if merged is None else [list(by_index.values()) for by_index in merged]


def _join(first: Any, second: Any) -> Any:
    from seqlab.lm.requests import StreamEvent

    return StreamEvent(
        first.index,
        first.text + second.text,
        second.finish_reason or first.finish_reason,
        second.completion_tokens or first.completion_tokens,
    )


@serve.deployment(name="Generator")
class GeneratorDeployment:
    """Loads a generator artifact; ``stream(request)`` yields per-step events, batched with other callers."""

    def __init__(self, path: str, device: str, num_cpus: float, batch: dict[str, Any]) -> None:
        from seqlab.lm.generator import load_generator

        self.stream_interval_s = _prepare_replica(num_cpus, self._decode_batch, batch).stream_interval_s
        self.device = pick_device(device)
        self.generator = load_generator(path, device=self.device)
        self.path = path
        log.info("generator %s loaded on %s", path, self.device)

    @serve.batch(
        max_batch_size=8,
        batch_wait_timeout_s=0.02,
        batch_size_fn=lambda items: sum(r.config.num_candidates for r in items),
    )
    async def _decode_batch(self, requests: list[Any]) -> AsyncIterator[list[Any]]:
        steps = self.generator.stream_batch(requests)
        finished = [False] * len(requests)
        open_rows = [r.config.num_candidates for r in requests]
        while True:
            step = await asyncio.to_thread(_next_chunk, steps, len(requests), self.stream_interval_s)
            if step is None:
                break
            out: list[Any] = []
            for i, events in enumerate(step):
                if finished[i]:
                    out.append(StopIteration)
                    continue
                out.append(events)
                open_rows[i] -= sum(ev.finish_reason is not None for ev in events)
                finished[i] = open_rows[i] == 0
            yield out
        if not all(finished):
            yield [StopIteration] * len(requests)

    async def stream(self, request: Any) -> AsyncIterator[list[Any]]:
        """Per step, the request's :class:`~seqlab.lm.generator.StreamEvent` list (possibly empty)."""
        async for events in self._decode_batch(request):
            yield events

    def encode(self, prompt: str, max_new_tokens: int) -> tuple[int, bool]:
        """(prompt tokens after fitting the context, whether the prompt was cut)."""
        ids, truncated = self.generator.encode(prompt, max_new_tokens)
        return len(ids), truncated

    def describe(self) -> dict[str, Any]:
        return {
            "role": "generator",
            "artifact": self.path,
            "device": self.device,
            **self.generator.describe(),
        }
