"""The model deployments: a scorer that batches requests dynamically, a generator that batches continuously.

Each replica loads its artifact once, on the GPU when Ray gave it one, and runs the model in a worker
thread so its event loop keeps taking requests while the model computes.

* :class:`ScorerDeployment` — texts from many requests become one ``Scorer.predict`` call
  (``@serve.batch``; ``Scorer.predict`` sorts them by length into padded sub-batches). The batch size
  counts texts, not requests.
* :class:`GeneratorDeployment` — every request in flight decodes in one forward pass per step, and new
  requests join the running batch between steps (continuous batching); every caller gets its own
  stream of text pieces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
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


@serve.deployment(name="Generator")
class GeneratorDeployment:
    """Loads a generator artifact; ``stream(request)`` yields its prompt's fit, then its text events.

    A thin Serve wrapper: continuous batching itself (who decodes together, when each request's text is
    sent) is :class:`seqlab.lm.scheduler.Scheduler`, which advances in a worker thread so the replica's
    event loop keeps taking requests. The event loop only submits and cancels through the scheduler's
    thread-safe inbox, and hands each advance's messages to the callers' queues. A message crosses the
    handle, the ingress and the proxy, so steps are merged into one per request every
    ``stream_interval_s`` (its first text and its finish go at once).
    """

    def __init__(self, path: str, device: str, num_cpus: float, batch: dict[str, Any]) -> None:
        import torch

        from seqlab.lm.generator import load_generator
        from seqlab.lm.scheduler import Scheduler

        torch.set_num_threads(max(1, int(num_cpus)))
        self.options = BatchOptions.model_validate(batch)
        self.device = pick_device(device)
        self.generator = load_generator(path, device=self.device)
        self.path = path
        self.scheduler = Scheduler(
            self.generator.session, self.options.max_batch_size, self.options.stream_interval_s
        )
        self._queues: dict[int, asyncio.Queue] = {}  # event loop only: each caller's messages
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.Task | None = None
        log.info("generator %s loaded on %s", path, self.device)

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        """:class:`~seqlab.lm.requests.PromptFit` first, then per message the request's
        :class:`~seqlab.lm.requests.StreamEvent` list (possibly empty)."""
        from seqlab.lm.requests import PromptFit

        ids, truncated = self.generator.encode(request.prompt, request.config.max_new_tokens)
        as_text = None if isinstance(request.prompt, str) else self.generator.tokenizer.decode(ids)
        yield PromptFit(len(ids), truncated, as_text)
        queue: asyncio.Queue = asyncio.Queue()
        key = self.scheduler.submit(request, ids)
        self._queues[key] = queue
        self._start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if self._queues.pop(key, None) is not None:  # the caller left before the end: stop decoding it
                self.scheduler.cancel(key)
                self._start()

    def _start(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """The bridge: the scheduler advances in a worker thread; its messages go to the callers' queues."""
        assert self._wake is not None
        while True:
            if self.scheduler.idle():
                self._wake.clear()
                await self._wake.wait()
                if self.options.batch_wait_timeout_s:  # idle: let simultaneous arrivals share one prefill
                    await asyncio.sleep(self.options.batch_wait_timeout_s)
            try:
                advanced = await asyncio.to_thread(self.scheduler.advance)
            except Exception as exc:  # the model failed: every request in flight fails with it
                log.exception("generator decoding failed")
                for key in self.scheduler.abort():
                    self._put(key, exc)
                    self._put(key, None)
                continue
            for key, events in advanced.messages.items():
                self._put(key, events)
            for key, exc in advanced.failed:
                self._put(key, exc)
            for key in advanced.ended():
                self._put(key, None)

    def _put(self, key: int, item: Any) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.put_nowait(item)
        if item is None:
            self._queues.pop(key, None)

    async def score(self, request: Any) -> list[Any]:
        """:class:`~seqlab.lm.requests.ScoredChoice` list of a
        :class:`~seqlab.lm.requests.ScoringRequest` (logprobs/echo), computed in a worker thread beside the
        decoding loop."""
        return await asyncio.to_thread(self.generator.score, request)

    def tokenize(self, text: str, add_special_tokens: bool) -> dict[str, Any]:
        """vLLM's ``/tokenize`` answer for ``text``."""
        tokenizer = self.generator.tokenizer
        ids = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        return {
            "count": len(ids),
            "max_model_len": self.generator.context_length,
            "tokens": ids,
            "token_strs": tokenizer.convert_ids_to_tokens(ids),
        }

    def detokenize(self, tokens: list[int]) -> str:
        """vLLM's ``/detokenize``: the text of ``tokens`` (ids outside the vocabulary are a PromptError)."""
        from seqlab.lm.logprobs import request_ids

        return (
            self.generator.tokenizer.decode(request_ids(self.generator.tokenizer, tokens)) if tokens else ""
        )

    def stats(self) -> dict[str, int]:
        """Queue depth and batch size right now (for ``/metrics``)."""
        return self.scheduler.stats()

    def describe(self) -> dict[str, Any]:
        return {
            "role": "generator",
            "artifact": self.path,
            "device": self.device,
            **self.generator.describe(),
        }
