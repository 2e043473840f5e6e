"""``/v1/generate``: continue a prompt, optionally reranked by the scorer, as JSON or server-sent events."""

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from seqlab.lm.requests import Collected, GenerationRequest, PromptFit
from seqlab.serve.errors import ApiError
from seqlab.serve.schemas import GenerateCandidate, GenerateRequest, GenerateResponse
from seqlab.serve.serving import (
    Deadline,
    GeneratorStreams,
    ServingContext,
    sse,
    stream_response,
    usage,
)
from seqlab.serve.serving_score import ServingScore

__all__ = ["ServingGenerate"]

log = logging.getLogger("ray.serve")


class ServingGenerate(GeneratorStreams):
    """seqlab's own generation route; with ``rerank`` every candidate is scored and they come best first."""

    def __init__(self, ctx: ServingContext, scoring: ServingScore) -> None:
        super().__init__(ctx)
        self.scoring = scoring

    async def generate(self, body: GenerateRequest) -> Any:
        """A :class:`GenerateResponse`, or with ``stream`` its SSE: ``{"index", "text"}`` pieces, then one
        ``{"done": true, "candidates": [...], "usage": {...}}`` event (reranked when asked), then ``[DONE]``."""
        self.ctx.need("generator")
        if body.rerank:
            self.ctx.need("scorer")
        self.ctx.check_prompt(body.prompt, "prompt")
        self.check_decoding(body, "max_new_tokens", "num_candidates")
        await self.check_context(body.max_new_tokens, "max_new_tokens")
        deadline = self.ctx.deadline()
        request = self.request(body.prompt, body)
        fit, stream = await self.open(request, "prompt", deadline)
        if body.stream:
            return stream_response(self._stream(request, stream, body.rerank, fit, deadline))
        return await self._answer(await self.collect(request, stream, deadline), body.rerank, fit, deadline)

    async def _answer(
        self, got: Collected, rerank: bool, fit: PromptFit, deadline: Deadline
    ) -> GenerateResponse:
        scores: list[float | None] = [None] * len(got.texts)
        if rerank:
            scores = list(await self.scoring.scores(got.texts, deadline))
        candidates = [
            GenerateCandidate(text=t, score=s, finish_reason=r)
            for t, s, r in zip(got.texts, scores, got.reasons, strict=True)
        ]
        if rerank:
            candidates.sort(key=lambda c: -(c.score or 0.0))
        return GenerateResponse(
            candidates=candidates,
            model=self.ctx.model_info("generator"),
            usage=usage(fit.tokens, got.completion_tokens),
            prompt_truncated=fit.truncated,
        )

    async def _stream(
        self, request: GenerationRequest, stream: Any, rerank: bool, fit: PromptFit, deadline: Deadline
    ) -> AsyncIterator[str]:
        got = Collected(request.config.num_candidates)
        try:
            async with aclosing(deadline.events(stream, "generator")) as messages:
                async for events in messages:
                    for e in events:
                        if e.text:
                            yield sse({"index": e.index, "text": e.text})
                    got.add(events)
            answer = await self._answer(got, rerank, fit, deadline)
            yield sse({"done": True, **answer.model_dump()})
        except ApiError as exc:
            yield sse(exc.body())
        except Exception as exc:  # the stream has started: the status is sent, so report in-band
            log.exception("generate stream failed")
            yield sse(ApiError(500, f"generation failed ({type(exc).__name__})").body())
        yield sse("[DONE]")
