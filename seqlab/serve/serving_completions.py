"""``/v1/completions``: OpenAI's legacy completions API (the official ``openai`` client works unchanged).

Plain choices are decoded by the generator's continuous batch, collected or streamed as SSE chunks;
choices with log-probabilities (``logprobs``/``echo``/``max_tokens: 0``, what evaluation harnesses send)
are scored in one generator call per prompt.
"""

import asyncio
import functools
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from seqlab.lm.config import DecodingParams
from seqlab.lm.requests import Collected, ScoringRequest
from seqlab.serve.errors import ApiError
from seqlab.serve.schemas import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    CompletionStreamResponse,
    Usage,
)
from seqlab.serve.serving import Deadline, GeneratorStreams, sse, stream_response, usage

__all__ = ["ServingCompletions"]


def _completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex[:24]}"


class ServingCompletions(GeneratorStreams):
    """OpenAI-compatible completions; not a chat API."""

    async def create(self, body: CompletionRequest) -> Any:
        """A :class:`CompletionResponse`, or with ``stream`` its SSE chunks then ``[DONE]``."""
        self.ctx.need("generator")
        self._check(body)
        prompts = body.prompts()
        if len(prompts) > self.limits.max_prompts:
            raise ApiError(
                413, f"prompt has {len(prompts)} items; the limit is {self.limits.max_prompts}", "prompt"
            )
        params = body.decoding()
        self.check_decoding(params, "max_tokens", "n")
        for i, p in enumerate(prompts):
            self.ctx.check_prompt(p, "prompt" if len(prompts) == 1 else f"prompt[{i}]")
        await self.check_context(params.max_new_tokens, "max_tokens")
        deadline = self.ctx.deadline()
        if body.scored():
            return await self._scored(body, prompts, params, deadline)
        requests = [self.request(p, params, body.stop) for p in prompts]
        fits, streams = await self.open_all(requests, "prompt", deadline)
        completion_id, created = _completion_id(), int(time.time())
        prompt_tokens = sum(fit.tokens for fit in fits)
        echoed = [p if isinstance(p, str) else fit.text or "" for p, fit in zip(prompts, fits, strict=True)]
        if body.stream:
            return stream_response(
                self._stream(body, echoed, streams, completion_id, created, prompt_tokens, deadline)
            )
        results = await asyncio.gather(
            *(self.collect(r, s, deadline) for r, s in zip(requests, streams, strict=True))
        )
        choices, completion_tokens = [], 0
        for p_idx, got in enumerate(results):
            for c_idx, (text, reason) in enumerate(zip(got.texts, got.reasons, strict=True)):
                prefix = echoed[p_idx] if body.echo else ""
                choices.append(
                    CompletionChoice(
                        index=p_idx * params.num_candidates + c_idx, text=prefix + text, finish_reason=reason
                    )
                )
            completion_tokens += got.completion_tokens
        return CompletionResponse(
            id=completion_id,
            created=created,
            model=body.model,
            choices=choices,
            usage=usage(prompt_tokens, completion_tokens),
        )

    def _check(self, body: CompletionRequest) -> None:
        """Refuse what seqlab does not do (best_of > 1, suffix, streamed logprobs) and a foreign model."""
        if body.best_of not in (None, 1):
            raise ApiError(
                400, f"best_of: only 1 is supported (got {body.best_of}); n gives several choices", "best_of"
            )
        if body.suffix is not None:
            raise ApiError(400, "suffix: not supported (this model does not fill in the middle)", "suffix")
        if body.max_tokens == 0 and not body.echo:
            raise ApiError(
                422, "max_tokens: 0 only makes sense with echo: true (to score the prompt)", "max_tokens"
            )
        if body.scored() and body.stream:
            raise ApiError(400, "logprobs: not streamed; send stream: false to get them", "logprobs")
        self.ctx.check_model(body.model)

    async def _scored(
        self, body: CompletionRequest, prompts: list[Any], params: DecodingParams, deadline: Deadline
    ) -> CompletionResponse:
        """Choices with every token's log-probability. One generator call per prompt, not streamed."""
        generator = self.ctx.need("generator")
        requests = [
            ScoringRequest(p, params, body.max_tokens, body.logprobs or 0, body.echo, tuple(body.stop or ()))
            for p in prompts
        ]
        results = await asyncio.gather(
            *(deadline.call(functools.partial(generator.score.remote, r), "generator") for r in requests)
        )
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for p_idx, scored in enumerate(results):
            prompt_tokens += scored[0].prompt_tokens
            for c_idx, choice in enumerate(scored):
                completion_tokens += choice.completion_tokens
                choices.append(
                    CompletionChoice(
                        index=p_idx * params.num_candidates + c_idx,
                        text=choice.text,
                        finish_reason=choice.finish_reason,
                        logprobs=CompletionLogprobs(**vars(choice.logprobs))
                        if body.logprobs is not None
                        else None,
                    )
                )
        return CompletionResponse(
            id=_completion_id(),
            created=int(time.time()),
            model=body.model,
            choices=choices,
            usage=usage(prompt_tokens, completion_tokens),
        )

    async def _stream(
        self,
        body: CompletionRequest,
        echoed: list[str],
        streams: list[Any],
        completion_id: str,
        created: int,
        prompt_tokens: int,
        deadline: Deadline,
    ) -> AsyncIterator[str]:
        """The prompts' streams interleaved as they come, one chunk per message; an error ends it in-band."""
        n = body.n
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(p_idx: int, stream: Any) -> None:
            try:
                async with aclosing(deadline.events(stream, "generator")) as messages:
                    async for events in messages:
                        await queue.put((p_idx, events))
            except Exception as exc:  # forwarded to the client in-band
                await queue.put((p_idx, exc))
            finally:
                await queue.put((p_idx, None))

        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(choices: list[CompletionChoice], totals: Usage | None = None) -> str:
            data = CompletionStreamResponse(
                id=completion_id, created=created, model=body.model, choices=choices, usage=totals
            ).model_dump()
            if totals is None and not include_usage:
                data.pop("usage")  # OpenAI sends usage: null on every chunk only when include_usage is set
            return sse(data)

        tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
        open_streams, got = len(tasks), [Collected(n) for _ in streams]
        try:
            if body.echo:
                for p_idx, text in enumerate(echoed):
                    yield chunk([CompletionChoice(index=p_idx * n + c, text=text) for c in range(n)])
            while open_streams:
                p_idx, item = await queue.get()
                if item is None:
                    open_streams -= 1
                    continue
                if isinstance(item, Exception):
                    error = (
                        item
                        if isinstance(item, ApiError)
                        else ApiError(500, f"generation failed ({type(item).__name__})")
                    )
                    yield sse(error.body())
                    break
                got[p_idx].add(item)
                choices = [
                    CompletionChoice(index=p_idx * n + ev.index, text=ev.text, finish_reason=ev.finish_reason)
                    for ev in item
                    if ev.text or ev.finish_reason
                ]
                if choices:
                    yield chunk(choices)
            else:
                totals = usage(prompt_tokens, sum(g.completion_tokens for g in got))
                if include_usage:
                    yield chunk([], totals)
        finally:
            for task in tasks:
                task.cancel()
        yield sse("[DONE]")
