"""What every serving class shares: the model handles, the request limits, and the one deadline.

The ingress is split as vLLM's OpenAI server is: :mod:`~seqlab.serve.errors`,
:mod:`~seqlab.serve.middleware`, one serving class per endpoint family
(:mod:`~seqlab.serve.serving_score`, :mod:`~seqlab.serve.serving_generate`,
:mod:`~seqlab.serve.serving_completions`, :mod:`~seqlab.serve.serving_models`), and
:mod:`~seqlab.serve.ingress`, whose routes only hand the body to one of them. The HTTP contract is
:mod:`seqlab.serve.schemas`; what crosses to the generator replica is :mod:`seqlab.lm.requests`.

Every wait on a model goes through the request's :class:`Deadline`: an awaited call, and every event of a
generator stream, opened, collected or streamed.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from fastapi.responses import StreamingResponse

from seqlab.lm.config import DecodingParams
from seqlab.lm.requests import Collected, GenerationRequest, PromptFit, prompt_room
from seqlab.serve import metrics
from seqlab.serve.config import ServeArgs
from seqlab.serve.errors import ApiError, serve_failure, unexpected_failure
from seqlab.serve.schemas import ModelInfo, Usage

__all__ = [
    "Deadline",
    "GeneratorStreams",
    "Serving",
    "ServingContext",
    "sse",
    "stream_response",
    "usage",
]

Handle = Any  # a ray.serve DeploymentHandle (typed loosely: the serving classes never import Ray)


class Deadline:
    """The app's deadline for one request (``limits.request_timeout_s`` from when it started).

    The one way a serving class waits on a model: :meth:`call` and :meth:`events` answer 408 once it has
    passed, map Serve's failures to their answers (:func:`~seqlab.serve.errors.serve_failure`), and a
    stream left early (deadline, failure, client gone) is cancelled, so its replica stops decoding it.
    """

    def __init__(self, args: ServeArgs) -> None:
        self.args = args
        self.seconds = args.limits.request_timeout_s
        self.at = time.monotonic() + self.seconds

    def _expired(self, what: str) -> ApiError:
        return ApiError(408, f"{what} did not finish within {self.seconds:g} s")

    def _mapped(self, exc: BaseException, what: str) -> ApiError | None:
        return serve_failure(exc, what, self.args.overload_status, self.args.retry_after_s)

    async def call(self, awaitable: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Await ``awaitable()`` (a handle call) until the deadline; any failure becomes an :class:`ApiError`."""
        try:
            return await asyncio.wait_for(awaitable(), timeout=max(self.at - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            raise self._expired(what) from None
        except ApiError:
            raise
        except Exception as exc:
            raise (self._mapped(exc, what) or unexpected_failure(exc, what)) from None

    async def events(self, stream: Any, what: str) -> AsyncIterator[Any]:
        """``stream``'s items until the deadline; then a 408 :class:`ApiError`. Serve's failures become
        their answers, others pass unchanged; a stream left before its end is cancelled."""
        iterator = stream.__aiter__()
        ended = False
        try:
            while True:
                remaining = self.at - time.monotonic()
                try:
                    item = await asyncio.wait_for(iterator.__anext__(), timeout=max(remaining, 0.001))
                except StopAsyncIteration:
                    ended = True
                    return
                except asyncio.TimeoutError:
                    raise self._expired(what) from None
                except Exception as exc:
                    mapped = self._mapped(exc, what)
                    if mapped is None:
                        raise
                    raise mapped from None
                yield item
        finally:
            if not ended and hasattr(stream, "cancel"):  # timed out, failed, or the client left
                stream.cancel()  # the replica stops decoding it


class ServingContext:
    """The ingress replica's view of the app: its args, the model handles (either may be None), the
    models' descriptions (fetched once)."""

    def __init__(self, scorer: Handle | None, generator: Handle | None, args: ServeArgs) -> None:
        self.args = args
        self.limits = args.limits
        self.scorer = scorer
        self.generator = generator
        self.created = int(time.time())
        self._cards: dict[str, dict[str, Any]] = {}

    def deadline(self) -> Deadline:
        """A new request's deadline."""
        return Deadline(self.args)

    def serves(self, role: str) -> bool:
        return (self.scorer if role == "scorer" else self.generator) is not None

    def need(self, role: str) -> Handle:
        handle = self.scorer if role == "scorer" else self.generator
        if handle is None:
            flag = "--scorer DIR" if role == "scorer" else "--generator DIR"
            raise ApiError(404, f"this app serves no {role}; start it with {flag} (args.{role})", role)
        return handle

    async def card(self, role: str) -> dict[str, Any]:
        """The model's ``describe()`` (architecture, context length, metrics...), asked once per replica."""
        if role not in self._cards:
            handle = self.need(role)
            self._cards[role] = await self.deadline().call(lambda: handle.describe.remote(), role)
        return self._cards[role]

    def model_info(self, role: str) -> ModelInfo:
        name = self.args.scorer_name if role == "scorer" else self.args.generator_name
        return ModelInfo(id=name, role=role, artifact=getattr(self.args, role))

    def check_model(self, model: str | None) -> None:
        """A request's ``model`` must name the generator (None: the one served)."""
        if model is None or model == self.args.generator_name:
            return
        if model == self.args.scorer_name and self.scorer is not None:
            raise ApiError(400, f"model {model!r} is the scorer; this route needs the generator", "model")
        raise ApiError(
            404, f"model {model!r} not found; this app serves {self.args.generator_name!r}", "model"
        )

    def check_prompt(self, prompt: str, field: str) -> None:
        if len(prompt) > self.limits.max_prompt_chars:
            raise ApiError(
                413,
                f"{field} has {len(prompt)} characters; the limit is {self.limits.max_prompt_chars}",
                field,
            )


class Serving:
    """Base of the serving classes: one endpoint family each, on a shared :class:`ServingContext`."""

    def __init__(self, ctx: ServingContext) -> None:
        self.ctx = ctx
        self.args = ctx.args
        self.limits = ctx.limits


class GeneratorStreams(Serving):
    """Opening and collecting generator streams, for the routes that generate text."""

    def check_decoding(self, params: DecodingParams, new_tokens_field: str, candidates_field: str) -> None:
        if params.max_new_tokens > self.limits.max_new_tokens:
            raise ApiError(
                422,
                f"{new_tokens_field} must be <= {self.limits.max_new_tokens} (got {params.max_new_tokens})",
                new_tokens_field,
            )
        if params.num_candidates > self.limits.max_candidates:
            raise ApiError(
                422,
                f"{candidates_field} must be <= {self.limits.max_candidates} (got {params.num_candidates})",
                candidates_field,
            )

    async def check_context(self, max_new_tokens: int, tokens_field: str) -> None:
        context = (await self.ctx.card("generator")).get("context_length")
        try:
            prompt_room(context, max_new_tokens)
        except ValueError:
            raise ApiError(
                422,
                f"{tokens_field} must be < the model's context of {context} tokens (got {max_new_tokens})",
                tokens_field,
            ) from None

    @staticmethod
    def request(
        prompt: str | tuple[int, ...], params: DecodingParams, stop: list[str] | None = None
    ) -> GenerationRequest:
        return GenerationRequest(prompt, DecodingParams.of(params), tuple(stop or ()))

    async def open(self, request: GenerationRequest, field: str, deadline: Deadline) -> tuple[PromptFit, Any]:
        """Start decoding ``request``: how its prompt fits the context, and the stream of its events.

        The generator answers the fit first, on the same stream, so a prompt too long for
        ``prompt_overflow: reject`` is refused (413) before any answer has started.
        """
        generator = self.ctx.need("generator")
        stream = generator.options(stream=True).stream.remote(request)
        # not cancelled when this fails: Serve's cancel() re-raises a rejected call's error (overload)
        fit = await deadline.call(stream.__anext__, "generator")
        if fit.truncated and self.limits.prompt_overflow == "reject":
            stream.cancel()
            raise ApiError(
                413,
                f"{field} does not fit the model's context with {request.config.max_new_tokens} new tokens",
                field,
            )
        return fit, stream

    async def open_all(
        self, requests: list[GenerationRequest], field: str, deadline: Deadline
    ) -> tuple[list[PromptFit], list[Any]]:
        """:meth:`open` every request (prompts of one body); if one is refused, the others stop too."""
        fits, streams = [], []
        try:
            for i, request in enumerate(requests):
                name = field if len(requests) == 1 else f"{field}[{i}]"
                fit, stream = await self.open(request, name, deadline)
                fits.append(fit)
                streams.append(stream)
        except BaseException:
            for stream in streams:
                stream.cancel()
            raise
        return fits, streams

    async def collect(self, request: GenerationRequest, stream: Any, deadline: Deadline) -> Collected:
        """A whole stream: per candidate its text, finish reason and completion tokens."""
        got = Collected(request.config.num_candidates)
        try:
            async with aclosing(deadline.events(stream, "generator")) as messages:
                async for events in messages:
                    got.add(events)
        except ApiError:
            raise
        except Exception as exc:
            raise unexpected_failure(exc, "generator") from None
        return got


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """An answer's token usage, counted into ``/metrics`` as it is made."""
    metrics.METRICS.count_tokens(prompt_tokens, completion_tokens)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def sse(payload: Any) -> str:
    """One server-sent event (``data: <json>``; ``[DONE]`` as is)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def stream_response(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
