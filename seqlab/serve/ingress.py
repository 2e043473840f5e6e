"""The FastAPI ingress: routes, validation, auth, request ids, limits, deadlines and SSE.

Route functions only validate, call the model deployments through their handles, and shape the answer;
the HTTP contract is :mod:`seqlab.serve.schemas`. Every error, ours or FastAPI's, leaves in one JSON shape
(:class:`~seqlab.serve.schemas.ErrorResponse`) and no input yields a 500: a model failure becomes a 500
with a short message (never a traceback), an overloaded model 503/429 with ``Retry-After``.
"""

import asyncio
import functools
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqlab.lm.config import DecodingConfig, DecodingParams
from seqlab.lm.requests import PromptError
from seqlab.serve import metrics
from seqlab.serve.config import ServeArgs
from seqlab.serve.schemas import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    CompletionStreamResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    ErrorResponse,
    GenerateCandidate,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    ModelCard,
    ModelInfo,
    ModelList,
    ReadyResponse,
    ScoreRequest,
    ScoreResponse,
    TokenizeRequest,
    TokenizeResponse,
    Usage,
)
from seqlab.text.normalize import has_arabic

__all__ = ["API_KEY_ENV", "ApiError", "Ingress", "api"]

log = logging.getLogger("ray.serve")  # Serve writes this logger to the replica logs, with request ids
API_KEY_ENV = "SEQLAB_API_KEY"
# answered without the API key: load balancers probe /healthz; the playground page holds no secret (it asks
# for the key and sends it with its own API calls), and / only redirects to it
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/playground", "/"})
PLAYGROUND_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # offline by construction: the page may load nothing from anywhere but itself and this app
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 408, 413, 422, 429, 500, 503)}


ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "overloaded_error",
    500: "server_error",
    503: "overloaded_error",
}


class ApiError(Exception):
    """An answer other than 2xx: status, message, and the field at fault (when one is)."""

    def __init__(self, status: int, message: str, param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.retry_after = status, message, param, retry_after

    def body(self) -> dict[str, Any]:
        kind = ERROR_TYPES.get(self.status, "error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.status}}

    def response(self) -> JSONResponse:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(self.retry_after)))
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


api = FastAPI(
    title="seqlab",
    version="1",
    description="Relevance scoring and Arabic text generation with the models seqlab trained. "
    "Errors have one shape: {'error': {'message', 'type', 'param', 'code'}}.",
)


@api.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON: {first.get('msg', '')}").response()
    if not loc and first.get("type") == "missing":
        return ApiError(
            400, "the request body is empty; send a JSON object (Content-Type: application/json)"
        ).response()
    if first.get("type") == "model_attributes_type" or (not loc and first.get("type") == "dict_type"):
        return ApiError(400, "the request body must be a JSON object").response()
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return ApiError(422, "; ".join(parts), param).response()


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return ApiError(exc.status_code, str(exc.detail)).response()


@api.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return ApiError(500, f"internal error ({type(exc).__name__}); see the server log").response()


@dataclass
class _EdgeSettings:
    """What the edge middleware checks, set by :class:`Ingress` when its replica starts.

    A module global, set through :func:`configure_edge`.
    """

    api_key: str | None = None
    max_body_bytes: int | None = None


EDGE = _EdgeSettings()


class EdgeMiddleware:
    """Auth and body size, before any route: a refused request never reaches the models.

    A plain ASGI middleware (Starlette's ``@app.middleware("http")`` wraps every request in extra tasks
    and streams, a cost that shows at hundreds of requests per second on a small machine). Request ids
    and access logs are Serve's own: the proxy answers with ``x-request-id`` and every replica log line,
    the access line included, carries that id.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_and_note(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            refusal = _guard(scope, headers, EDGE)
            if refusal is not None:
                await refusal(scope, receive, send_and_note)
                return
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:  # the client left before an answer: nginx's 499, not a server error
            if status[0] == 500:
                status[0] = 499
            raise
        finally:
            metrics.METRICS.observe(_route_path(scope), status[0], time.perf_counter() - started)


def configure_edge(api_key: str | None, max_body_bytes: int) -> None:
    """Set what :class:`EdgeMiddleware` checks (called by each ingress replica as it starts).

    A function of this module on purpose: Serve pickles the ingress class by value, globals included, so
    only a call into the imported module reaches the object the middleware reads.
    """
    EDGE.api_key = api_key
    EDGE.max_body_bytes = max_body_bytes


def _route_path(scope: dict) -> str:
    """The request's path inside the app (without the route prefix it may live under)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def _guard(scope: dict, headers: dict[str, str], state: _EdgeSettings) -> JSONResponse | None:
    """The refusal for a request that must not reach a route (no/invalid key, oversized body), or None."""
    key = state.api_key
    path = _route_path(scope)
    if key and path not in OPEN_PATHS:
        header = headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token:
            return ApiError(401, "missing API key: send 'Authorization: Bearer <key>'").response()
        if not hmac.compare_digest(token.strip().encode(), key.encode()):
            return ApiError(401, "invalid API key").response()
    limit = state.max_body_bytes
    length = headers.get("content-length")
    if limit and length is not None:
        if not length.isdigit():
            return ApiError(400, "invalid Content-Length header").response()
        if int(length) > limit:
            return ApiError(413, f"the request body is {int(length)} bytes; the limit is {limit}").response()
    return None


api.add_middleware(EdgeMiddleware)


@functools.cache
def playground_html() -> str:
    """The playground page, shipped with the package (``seqlab/serve/playground/index.html``)."""
    from importlib.resources import files

    return (files("seqlab.serve") / "playground" / "index.html").read_text(encoding="utf-8")


def _usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """An answer's token usage, counted into ``/metrics`` as it is made."""
    metrics.METRICS.count_tokens(prompt_tokens, completion_tokens)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def _sse(payload: Any) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def _stream_response(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    """Routes requests to the scorer and generator deployments (either may be absent)."""

    def __init__(
        self,
        scorer: DeploymentHandle | None,
        generator: DeploymentHandle | None,
        args: dict[str, Any],
    ) -> None:
        self.args = ServeArgs.model_validate(args)
        self.limits = self.args.limits
        self.scorer = scorer
        self.generator = generator
        self._cards: dict[str, dict[str, Any]] = {}
        self.created = int(time.time())
        api_key = os.environ.get(API_KEY_ENV) or None
        configure_edge(api_key, self.limits.max_body_bytes)
        log.info(
            "seqlab ingress ready: scorer=%s generator=%s auth=%s",
            self.args.scorer,
            self.args.generator,
            "on" if api_key else "off",
        )

    # --- helpers ---

    def _need(self, role: str) -> DeploymentHandle:
        handle = self.scorer if role == "scorer" else self.generator
        if handle is None:
            flag = "--scorer DIR" if role == "scorer" else "--generator DIR"
            raise ApiError(404, f"this app serves no {role}; start it with {flag} (args.{role})", role)
        return handle

    async def _call(self, coro_factory, what: str) -> Any:
        """Await a handle call under the app's deadline, mapping Serve's failures to clear answers."""
        try:
            return await asyncio.wait_for(coro_factory(), timeout=self.limits.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(408, f"{what} did not finish within {self.limits.request_timeout_s:g} s") from None
        except ApiError:
            raise
        except Exception as exc:
            mapped = self._serve_failure(exc, what)
            if mapped is not None:
                raise mapped from None
            log.exception("%s failed", what)
            raise ApiError(500, f"the {what} failed ({type(exc).__name__}); see the server log") from None

    def _serve_failure(self, exc: Exception, what: str) -> ApiError | None:
        """The answer for Serve's own failures: overload -> 503/429, a lost replica -> 503, a prompt the
        model cannot take -> its 4xx (else None)."""
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        cause = getattr(exc, "cause", exc)  # a replica's exception arrives wrapped in a RayTaskError
        if isinstance(cause, PromptError):
            return ApiError(cause.status, str(cause), "prompt")

        if isinstance(exc, BackPressureError):
            return ApiError(
                self.args.overload_status,
                f"the {what} is overloaded; retry later",
                retry_after=self.args.retry_after_s,
            )
        if isinstance(exc, (RayActorError, DeploymentUnavailableError)):
            return ApiError(
                503,
                f"the {what} replica is unavailable (restarting); retry",
                retry_after=self.args.retry_after_s,
            )
        return None

    def _check_decoding(self, params: DecodingParams, new_tokens_field: str, candidates_field: str) -> None:
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

    def _check_prompt(self, prompt: str, field: str) -> None:
        if len(prompt) > self.limits.max_prompt_chars:
            raise ApiError(
                413,
                f"{field} has {len(prompt)} characters; the limit is {self.limits.max_prompt_chars}",
                field,
            )

    async def _check_context(self, max_new_tokens: int, tokens_field: str) -> None:
        card = await self._card("generator")
        context = card.get("context_length")
        if context is not None and max_new_tokens >= context:
            raise ApiError(
                422,
                f"{tokens_field} must be < the model's context of {context} tokens (got {max_new_tokens})",
                tokens_field,
            )

    async def _open(self, request, field: str) -> tuple[Any, AsyncIterator[list[Any]]]:
        """Start decoding ``request``: how its prompt fits the context, and the stream of its events.

        The generator answers the fit first, on the same stream, so a prompt too long for
        ``prompt_overflow: reject`` is refused (413) before any answer has started.
        """
        generator = self._need("generator")
        stream = generator.options(stream=True).stream.remote(request)
        fit = await self._call(stream.__anext__, "generator")
        if fit.truncated and self.limits.prompt_overflow == "reject":
            stream.cancel()
            raise ApiError(
                413,
                f"{field} does not fit the model's context with {request.config.max_new_tokens} new tokens",
                field,
            )
        return fit, stream

    async def _open_all(self, requests: list[Any], field: str) -> tuple[list[Any], list[Any]]:
        """:meth:`_open` every request (prompts of one body); if one is refused, the others stop too."""
        fits, streams = [], []
        try:
            for i, request in enumerate(requests):
                fit, stream = await self._open(request, field if len(requests) == 1 else f"{field}[{i}]")
                fits.append(fit)
                streams.append(stream)
        except BaseException:
            for stream in streams:
                stream.cancel()
            raise
        return fits, streams

    def _request(self, prompt: str | tuple[int, ...], params: DecodingParams, stop: list[str] | None = None):
        from seqlab.lm.requests import GenerationRequest

        decoding = {name: getattr(params, name) for name in DecodingParams.model_fields}
        return GenerationRequest(prompt, DecodingConfig(**decoding), tuple(stop or ()))

    async def _collect(self, request, stream) -> tuple[list[str], list[str], list[int]]:
        n = request.config.num_candidates
        texts, reasons, tokens = [""] * n, ["length"] * n, [0] * n

        async def run():
            async for events in stream:
                for ev in events:
                    texts[ev.index] += ev.text
                    if ev.finish_reason is not None:
                        reasons[ev.index], tokens[ev.index] = ev.finish_reason, ev.completion_tokens

        try:
            await self._call(run, "generator")
        except BaseException:
            stream.cancel()  # timed out or failed: the replica stops decoding it
            raise
        return texts, reasons, tokens

    async def _scores(self, texts: list[str]) -> list[float]:
        scorer = self._need("scorer")
        return await self._call(lambda: scorer.score.remote(texts), "scorer")

    async def _card(self, role: str) -> dict[str, Any]:
        if role not in self._cards:
            handle = self._need(role)
            self._cards[role] = await self._call(lambda: handle.describe.remote(), role)
        return self._cards[role]

    def _check_model(self, model: str | None) -> None:
        """A request's ``model`` must name the generator (None: the one served)."""
        if model is None or model == self.args.generator_name:
            return
        if model == self.args.scorer_name and self.scorer is not None:
            raise ApiError(400, f"model {model!r} is the scorer; this route needs the generator", "model")
        raise ApiError(
            404, f"model {model!r} not found; this app serves {self.args.generator_name!r}", "model"
        )

    def _model_info(self, role: str) -> ModelInfo:
        name = self.args.scorer_name if role == "scorer" else self.args.generator_name
        return ModelInfo(id=name, role=role, artifact=getattr(self.args, role))

    # --- routes ---

    @api.get("/", include_in_schema=False)
    async def root(self, request: Request) -> RedirectResponse:
        """The playground page (``/`` is no API route)."""
        return RedirectResponse(f"{request.scope.get('root_path', '')}/playground", status_code=307)

    @api.get("/playground", response_class=HTMLResponse, tags=["meta"])
    async def playground(self) -> HTMLResponse:
        """A page to try the served models in a browser (static HTML + JavaScript, works offline)."""
        return HTMLResponse(playground_html(), headers=PLAYGROUND_HEADERS)

    @api.get("/healthz", response_model=HealthResponse, responses=_ERRORS, tags=["meta"])
    async def healthz(self) -> HealthResponse:
        """Liveness: 200 while the ingress runs (no API key needed)."""
        return HealthResponse(scorer=self.scorer is not None, generator=self.generator is not None)

    @api.get("/readyz", response_model=ReadyResponse, responses=_ERRORS, tags=["meta"])
    async def readyz(self) -> ReadyResponse:
        """Readiness: 200 once every served model has loaded and answers (503 before; no API key needed)."""
        for role in ("scorer", "generator"):
            if (self.scorer if role == "scorer" else self.generator) is not None:
                try:
                    await asyncio.wait_for(self._card(role), timeout=5)
                except (ApiError, asyncio.TimeoutError):
                    raise ApiError(
                        503, f"the {role} is not ready yet", retry_after=self.args.retry_after_s
                    ) from None
        return ReadyResponse(scorer=self.scorer is not None, generator=self.generator is not None)

    @api.get("/metrics", response_class=PlainTextResponse, tags=["meta"])
    async def metrics_text(self) -> PlainTextResponse:
        """Prometheus text format: requests and latency by route and status, tokens, generator queue."""
        gauges: dict[str, float] = {}
        if self.generator is not None:
            try:
                stats = await asyncio.wait_for(self.generator.stats.remote(), timeout=2)
                gauges = {
                    "generator_waiting": stats["waiting"],
                    "generator_running_rows": stats["running_rows"],
                }
            except Exception:  # a metrics scrape never fails because a replica is busy or restarting
                pass
        return PlainTextResponse(metrics.METRICS.render(gauges), media_type="text/plain; version=0.0.4")

    @api.post("/tokenize", response_model=TokenizeResponse, responses=_ERRORS, tags=["generator"])
    async def tokenize(self, body: TokenizeRequest) -> TokenizeResponse:
        """The generator tokenizer's ids for a text (vLLM's shape)."""
        generator = self._need("generator")
        self._check_model(body.model)
        self._check_prompt(body.prompt, "prompt")
        answer = await self._call(
            lambda: generator.tokenize.remote(body.prompt, body.add_special_tokens), "generator"
        )
        return TokenizeResponse(**answer)

    @api.post("/detokenize", response_model=DetokenizeResponse, responses=_ERRORS, tags=["generator"])
    async def detokenize(self, body: DetokenizeRequest) -> DetokenizeResponse:
        """The text of token ids (vLLM's shape)."""
        generator = self._need("generator")
        self._check_model(body.model)
        if len(body.tokens) > self.limits.max_prompt_chars:
            raise ApiError(
                413,
                f"tokens has {len(body.tokens)} ids; the limit is {self.limits.max_prompt_chars}",
                "tokens",
            )
        text = await self._call(lambda: generator.detokenize.remote(body.tokens), "generator")
        return DetokenizeResponse(prompt=text)

    @api.get("/v1/models", response_model=ModelList, responses=_ERRORS, tags=["meta"])
    async def models(self) -> ModelList:
        """The served models in OpenAI's list shape, each with seqlab's metadata (role, artifact, metrics)."""
        cards = []
        for role, name in (("scorer", self.args.scorer_name), ("generator", self.args.generator_name)):
            if (self.scorer if role == "scorer" else self.generator) is not None:
                cards.append(ModelCard(id=name, created=self.created, seqlab=await self._card(role)))
        return ModelList(data=cards)

    @api.post("/v1/score", response_model=ScoreResponse, responses=_ERRORS, tags=["scorer"])
    async def score(self, body: ScoreRequest) -> ScoreResponse:
        """Relevance scores (0-10) of raw texts, normalized exactly as the scorer's training text was."""
        self._need("scorer")
        if len(body.texts) > self.limits.max_texts:
            raise ApiError(
                413, f"texts has {len(body.texts)} items; the limit is {self.limits.max_texts}", "texts"
            )
        for i, text in enumerate(body.texts):
            if len(text) > self.limits.max_text_chars:
                raise ApiError(
                    413,
                    f"texts[{i}] has {len(text)} characters; the limit is {self.limits.max_text_chars}",
                    f"texts[{i}]",
                )
        scores = await self._scores(body.texts)
        normalized = None
        if body.return_normalized:
            scorer = self._need("scorer")
            normalized = await self._call(lambda: scorer.prepare.remote(body.texts), "scorer")
        return ScoreResponse(
            scores=scores,
            no_arabic=[not has_arabic(t) for t in body.texts],  # the rule Scorer.no_arabic applies
            normalized=normalized,
            model=self._model_info("scorer"),
        )

    @api.post(
        "/v1/generate",
        response_model=GenerateResponse,
        responses={
            **_ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream"},
        },
        tags=["generator"],
    )
    async def generate(self, body: GenerateRequest):
        """Continue a prompt; with ``rerank`` every candidate is scored and they come best first.

        With ``stream: true`` the answer is server-sent events: ``{"index", "text"}`` pieces, then one
        ``{"done": true, "candidates": [...], "usage": {...}}`` event (reranked when asked), then ``[DONE]``.
        """
        self._need("generator")
        if body.rerank:
            self._need("scorer")
        self._check_prompt(body.prompt, "prompt")
        self._check_decoding(body, "max_new_tokens", "num_candidates")
        await self._check_context(body.max_new_tokens, "max_new_tokens")
        request = self._request(body.prompt, body)
        fit, stream = await self._open(request, "prompt")
        if body.stream:
            return _stream_response(self._generate_stream(request, stream, body.rerank, fit))
        texts, reasons, tokens = await self._collect(request, stream)
        return await self._generate_answer(texts, reasons, tokens, body.rerank, fit.tokens, fit.truncated)

    async def _generate_answer(
        self, texts, reasons, tokens, rerank, prompt_tokens, truncated
    ) -> GenerateResponse:
        scores: list[float | None] = [None] * len(texts)
        if rerank:
            scores = list(await self._scores(texts))
        candidates = [
            GenerateCandidate(text=t, score=s, finish_reason=r)
            for t, s, r in zip(texts, scores, reasons, strict=True)
        ]
        if rerank:
            candidates.sort(key=lambda c: -(c.score or 0.0))
        usage = _usage(prompt_tokens, sum(tokens))
        return GenerateResponse(
            candidates=candidates,
            model=self._model_info("generator"),
            usage=usage,
            prompt_truncated=truncated,
        )

    async def _generate_stream(self, request, stream, rerank: bool, fit) -> AsyncIterator[str]:
        n = request.config.num_candidates
        texts, reasons, tokens = [""] * n, ["length"] * n, [0] * n
        try:
            async for ev in self._deadline(stream):
                for e in ev:
                    texts[e.index] += e.text
                    if e.text:
                        yield _sse({"index": e.index, "text": e.text})
                    if e.finish_reason is not None:
                        reasons[e.index], tokens[e.index] = e.finish_reason, e.completion_tokens
            answer = await self._generate_answer(texts, reasons, tokens, rerank, fit.tokens, fit.truncated)
            yield _sse({"done": True, **answer.model_dump()})
        except ApiError as exc:
            yield _sse(exc.body())
        except Exception as exc:  # the stream has started: the status is sent, so report in-band
            log.exception("generate stream failed")
            yield _sse(ApiError(500, f"generation failed ({type(exc).__name__})").body())
        yield _sse("[DONE]")

    async def _deadline(self, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Pass events through until the app's deadline; then raise a 408 :class:`ApiError`."""
        deadline = time.monotonic() + self.limits.request_timeout_s
        iterator = events.__aiter__()
        ended = False
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    item = await asyncio.wait_for(iterator.__anext__(), timeout=max(remaining, 0.001))
                except StopAsyncIteration:
                    ended = True
                    return
                except asyncio.TimeoutError:
                    raise ApiError(
                        408, f"generation did not finish within {self.limits.request_timeout_s:g} s"
                    ) from None
                except Exception as exc:
                    mapped = self._serve_failure(exc, "generator")
                    if mapped is None:
                        raise
                    raise mapped from None
                yield item
        finally:
            if not ended and hasattr(events, "cancel"):  # timed out, failed, or the client left
                events.cancel()  # the replica stops decoding it

    @api.post(
        "/v1/completions",
        response_model=CompletionResponse,
        responses={
            **_ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream"},
        },
        tags=["openai"],
    )
    async def completions(self, body: CompletionRequest):
        """OpenAI-compatible completions (the official ``openai`` client works unchanged); not a chat API."""
        self._need("generator")
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
        self._check_model(body.model)
        prompts = body.prompts()
        if len(prompts) > self.limits.max_prompts:
            raise ApiError(
                413, f"prompt has {len(prompts)} items; the limit is {self.limits.max_prompts}", "prompt"
            )
        params = body.decoding()
        self._check_decoding(params, "max_tokens", "n")
        for i, p in enumerate(prompts):
            self._check_prompt(p, "prompt" if len(prompts) == 1 else f"prompt[{i}]")
        await self._check_context(params.max_new_tokens, "max_tokens")
        if body.scored():
            return await self._scored_completions(body, prompts, params)
        requests = [self._request(p, params, body.stop) for p in prompts]
        fits, streams = await self._open_all(requests, "prompt")
        completion_id = f"cmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        prompt_tokens = sum(fit.tokens for fit in fits)
        echoed = [p if isinstance(p, str) else fit.text or "" for p, fit in zip(prompts, fits, strict=True)]
        if body.stream:
            return _stream_response(
                self._completion_stream(body, echoed, streams, completion_id, created, prompt_tokens)
            )
        results = await asyncio.gather(*(self._collect(r, s) for r, s in zip(requests, streams, strict=True)))
        choices, completion_tokens = [], 0
        for p_idx, (texts, reasons, tokens) in enumerate(results):
            for c_idx, (text, reason) in enumerate(zip(texts, reasons, strict=True)):
                prefix = echoed[p_idx] if body.echo else ""
                choices.append(
                    CompletionChoice(
                        index=p_idx * params.num_candidates + c_idx, text=prefix + text, finish_reason=reason
                    )
                )
            completion_tokens += sum(tokens)
        usage = _usage(prompt_tokens, completion_tokens)
        return CompletionResponse(
            id=completion_id, created=created, model=body.model, choices=choices, usage=usage
        )

    async def _scored_completions(self, body: CompletionRequest, prompts, params: DecodingParams):
        """Choices with every token's log-probability (``logprobs``/``echo``/``max_tokens: 0``): what
        evaluation harnesses send. One generator call per prompt, not streamed."""
        from seqlab.lm.requests import ScoringRequest

        generator = self._need("generator")
        config = self._request("", params).config
        requests = [
            ScoringRequest(p, config, body.max_tokens, body.logprobs or 0, body.echo, tuple(body.stop or ()))
            for p in prompts
        ]
        results = await asyncio.gather(
            *(self._call(functools.partial(generator.score.remote, r), "generator") for r in requests)
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
        usage = _usage(prompt_tokens, completion_tokens)
        return CompletionResponse(
            id=f"cmpl-{uuid.uuid4().hex[:24]}",
            created=int(time.time()),
            model=body.model,
            choices=choices,
            usage=usage,
        )

    async def _completion_stream(
        self,
        body: CompletionRequest,
        echoed: list[str],
        streams,
        completion_id: str,
        created: int,
        prompt_tokens: int,
    ):
        n = body.n
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(p_idx: int, stream) -> None:
            try:
                async for events in self._deadline(stream):
                    await queue.put((p_idx, events))
            except Exception as exc:  # forwarded to the client in-band
                await queue.put((p_idx, exc))
            finally:
                await queue.put((p_idx, None))

        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(choices: list[CompletionChoice], usage: Usage | None = None) -> str:
            data = CompletionStreamResponse(
                id=completion_id, created=created, model=body.model, choices=choices, usage=usage
            ).model_dump()
            if usage is None and not include_usage:
                data.pop("usage")  # OpenAI sends usage: null on every chunk only when include_usage is set
            return _sse(data)

        tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
        open_streams, completion_tokens = len(tasks), 0
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
                    yield _sse(error.body())
                    break
                choices = []
                for ev in item:
                    if ev.text or ev.finish_reason:
                        choices.append(
                            CompletionChoice(
                                index=p_idx * n + ev.index, text=ev.text, finish_reason=ev.finish_reason
                            )
                        )
                    completion_tokens += ev.completion_tokens
                if choices:
                    yield chunk(choices)
            else:
                usage = _usage(prompt_tokens, completion_tokens)
                if include_usage:
                    yield chunk([], usage)
        finally:
            for task in tasks:
                task.cancel()
        yield _sse("[DONE]")
