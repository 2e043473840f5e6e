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
import collections
import itertools
import logging
import time
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


def _merge(into: dict[int, Any], events: list[Any]) -> bool:
    """Add one step's events to a request's pending message (texts joined per candidate); any finish?"""
    finishing = False
    for ev in events:
        if ev.index in into:
            ev = _join(into[ev.index], ev)
        into[ev.index] = ev
        finishing = finishing or ev.finish_reason is not None
    return finishing


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
    """Loads a generator artifact; ``stream(request)`` yields its prompt's fit, then its text events.

    Continuous batching (as vLLM and TGI schedule): one decoding loop per replica runs every request
    that is in flight in one forward pass per step, and a request that arrives mid-flight joins at
    the next step instead of waiting for the running batch to end (``DecodeSession``); a finished or
    abandoned request leaves at once. Up to ``max_batch_size`` rows decode together; the rest wait.

    The loop decodes in a worker thread, so the replica's event loop keeps taking requests. Steps are
    merged into one message per request every ``stream_interval_s`` (each message crosses the handle,
    the ingress and the proxy), except that a request's first text, its finish, and a newcomer waiting
    to join end the message at once.
    """

    def __init__(self, path: str, device: str, num_cpus: float, batch: dict[str, Any]) -> None:
        import torch

        from seqlab.lm.generator import load_generator

        torch.set_num_threads(max(1, int(num_cpus)))
        self.options = BatchOptions.model_validate(batch)
        self.device = pick_device(device)
        self.generator = load_generator(path, device=self.device)
        self.path = path
        self.session = self.generator.session()
        self._keys = itertools.count()
        self._waiting: collections.deque[tuple[int, Any, list[int]]] = collections.deque()
        self._cancelled: list[int] = []
        self._queues: dict[int, asyncio.Queue] = {}
        self._pending: dict[int, dict[int, Any]] = {}  # decoding thread: unsent events per request
        self._due: dict[int, float] = {}  # decoding thread: when each request's next message may go
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
        key, queue = next(self._keys), asyncio.Queue()
        self._queues[key] = queue
        self._waiting.append((key, request, ids))
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
                self._cancelled.append(key)
                self._start()

    def _start(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not len(self.session) and not self._waiting:
                self._wake.clear()
                if self._cancelled:
                    self._cancelled.clear()
                await self._wake.wait()
                if self.options.batch_wait_timeout_s:  # idle: let simultaneous arrivals share one prefill
                    await asyncio.sleep(self.options.batch_wait_timeout_s)
            admit = self._admissible()
            cancelled, self._cancelled = self._cancelled, []
            try:
                messages, finished, failed = await asyncio.to_thread(self._advance, admit, cancelled)
            except Exception as exc:  # the model failed: every request in flight fails with it
                log.exception("generator decoding failed")
                for key in [*self.session.texts, *(k for k, _, _ in admit)]:
                    self._put(key, exc)
                    self._put(key, None)
                self.session = self.generator.session()
                self._pending.clear()
                self._due.clear()
                continue
            for key, events in messages.items():
                self._put(key, events)
            for key, exc in failed:
                self._put(key, exc)
            for key in [*finished, *(k for k, _ in failed)]:
                self._put(key, None)

    def _put(self, key: int, item: Any) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.put_nowait(item)
        if item is None:
            self._queues.pop(key, None)

    def _admissible(self) -> list[tuple[int, Any, list[int]]]:
        """Waiting requests that fit under ``max_batch_size`` rows now (one at least when idle)."""
        admit, rows = [], self.session.rows
        while self._waiting and self.session.accepts():
            key, request, ids = self._waiting[0]
            n = request.config.num_candidates
            if rows + n > self.options.max_batch_size and (rows or admit):
                break
            self._waiting.popleft()
            if key in self._queues:  # not abandoned while it waited
                admit.append((key, request, ids))
                rows += n
        return admit

    def _room_for_next(self) -> bool:
        try:
            _, request, _ = self._waiting[0]
        except IndexError:
            return False
        return self.session.rows + request.config.num_candidates <= self.options.max_batch_size

    def _advance(
        self, admit: list[tuple[int, Any, list[int]]], cancelled: list[int]
    ) -> tuple[dict[int, list[Any]], list[int], list[tuple[int, Exception]]]:
        """Decoding thread: admit, then decode until some request's message is due (class docstring).

        Each request keeps its own schedule: its text is sent every ``stream_interval_s``, and at once
        when it is its first text or its finish; the other requests' text keeps accumulating.
        """
        for key in cancelled:
            self.session.cancel(key)
            self._pending.pop(key, None)
        failed = []
        for key, request, ids in admit:
            try:
                self.session.add(key, request, ids)
                self._pending[key] = {}
                self._due[key] = 0.0  # its first text goes out at once: time to first token
            except ValueError as exc:
                failed.append((key, exc))
        due: set[int] = set()
        finished: list[int] = []
        while len(self.session) and not due:
            now = time.monotonic()
            for key, events in self.session.step():
                pending = self._pending.setdefault(key, {})
                if _merge(pending, events) or key not in self.session.texts:
                    finished.append(key)
                    due.add(key)
                elif any(ev.text for ev in pending.values()) and now >= self._due.get(key, 0.0):
                    due.add(key)
            if self._room_for_next() or self._cancelled:
                break
        messages = {}
        for key in due:
            messages[key] = list(self._pending.pop(key, {}).values())
            self._due[key] = time.monotonic() + self.options.stream_interval_s
            self._pending[key] = {}
        for key in finished:
            self._pending.pop(key, None)
            self._due.pop(key, None)
        return messages, [k for k in finished if k not in self.session.texts], failed

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
        return {"waiting": len(self._waiting), "running_rows": self.session.rows}

    def describe(self) -> dict[str, Any]:
        return {
            "role": "generator",
            "artifact": self.path,
            "device": self.device,
            **self.generator.describe(),
        }
