"""The FastAPI ingress: the app, its routes, and the Serve deployment that holds them.

A route only hands its validated body to the serving class of its endpoint family
(:mod:`seqlab.serve.serving` and its ``serving_*`` modules), which checks the limits, calls the model
deployments through their handles under the request's deadline, and shapes the answer. The HTTP contract
is :mod:`seqlab.serve.schemas`; errors are :mod:`seqlab.serve.errors` (one JSON shape, no input yields a
500); auth and body size are checked before any route by :mod:`seqlab.serve.middleware`.
"""

import functools
import inspect
import logging
import os
import types
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from seqlab.serve.config import ServeArgs
from seqlab.serve.errors import ERROR_RESPONSES, ApiError, install_error_handlers
from seqlab.serve.middleware import EdgeMiddleware, configure_edge
from seqlab.serve.schemas import (
    CompletionRequest,
    CompletionResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    ModelList,
    ReadyResponse,
    ScoreRequest,
    ScoreResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from seqlab.serve.serving import ServingContext
from seqlab.serve.serving_completions import ServingCompletions
from seqlab.serve.serving_generate import ServingGenerate
from seqlab.serve.serving_models import ServingModels, ServingTokens
from seqlab.serve.serving_score import ServingScore

__all__ = ["API_KEY_ENV", "ApiError", "Ingress", "api"]

log = logging.getLogger("ray.serve")  # Serve writes this logger to the replica logs, with request ids
API_KEY_ENV = "SEQLAB_API_KEY"
PLAYGROUND_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # offline by construction: the page may load nothing from anywhere but itself and this app
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
_JSON_OR_SSE = {
    **ERROR_RESPONSES,
    200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream"},
}

api = FastAPI(
    title="seqlab",
    version="1",
    description="Relevance scoring and Arabic text generation with the models seqlab trained. "
    "Errors have one shape: {'error': {'message', 'type', 'param', 'code'}}.",
)
install_error_handlers(api)
api.add_middleware(EdgeMiddleware)


@functools.cache
def playground_html() -> str:
    """The playground page, shipped with the package (``seqlab/serve/playground/index.html``)."""
    from importlib.resources import files

    return (files("seqlab.serve") / "playground" / "index.html").read_text(encoding="utf-8")


def local_scorer(args: ServeArgs) -> "LocalHandle":
    """The scorer in this ingress replica (``scorer_placement: ingress``), batched as its deployment is."""
    from seqlab.serve.deployments import ScorerDeployment

    opts = args.scorer_deployment
    model = ScorerDeployment.func_or_class(
        args.scorer, args.device, opts.num_cpus, args.scorer_batch.model_dump()
    )
    return LocalHandle(model)


class LocalHandle:
    """An object in this process, called the way a Serve handle is: ``handle.method.remote(*args)``
    returns an awaitable (so the serving classes do not care where the model runs)."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return types.SimpleNamespace(remote=call)


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
        if self.args.scorer and self.args.scorer_placement == "ingress":
            scorer = local_scorer(self.args)
        ctx = ServingContext(scorer, generator, self.args)
        self.scoring = ServingScore(ctx)
        self.generation = ServingGenerate(ctx, self.scoring)
        self.completion = ServingCompletions(ctx)
        self.meta = ServingModels(ctx)
        self.tokens = ServingTokens(ctx)
        api_key = os.environ.get(API_KEY_ENV) or None
        configure_edge(api_key, self.args.limits.max_body_bytes)
        log.info(
            "seqlab ingress ready: scorer=%s generator=%s auth=%s",
            self.args.scorer,
            self.args.generator,
            "on" if api_key else "off",
        )

    @api.get("/", include_in_schema=False)
    async def root(self, request: Request) -> RedirectResponse:
        """The playground page (``/`` is no API route)."""
        return RedirectResponse(f"{request.scope.get('root_path', '')}/playground", status_code=307)

    @api.get("/playground", response_class=HTMLResponse, tags=["meta"])
    async def playground(self) -> HTMLResponse:
        """A page to try the served models in a browser (static HTML + JavaScript, works offline)."""
        return HTMLResponse(playground_html(), headers=PLAYGROUND_HEADERS)

    @api.get("/healthz", response_model=HealthResponse, responses=ERROR_RESPONSES, tags=["meta"])
    async def healthz(self) -> HealthResponse:
        """Liveness: 200 while the ingress runs (no API key needed)."""
        return self.meta.health()

    @api.get("/readyz", response_model=ReadyResponse, responses=ERROR_RESPONSES, tags=["meta"])
    async def readyz(self) -> ReadyResponse:
        """Readiness: 200 once every served model has loaded and answers (503 before; no API key needed)."""
        return await self.meta.ready()

    @api.get("/metrics", response_class=PlainTextResponse, tags=["meta"])
    async def metrics_text(self) -> PlainTextResponse:
        """Prometheus text format: requests and latency by route and status, tokens, generator queue."""
        text = await self.meta.metrics_text()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @api.post("/tokenize", response_model=TokenizeResponse, responses=ERROR_RESPONSES, tags=["generator"])
    async def tokenize(self, body: TokenizeRequest) -> TokenizeResponse:
        """The generator tokenizer's ids for a text (vLLM's shape)."""
        return await self.tokens.tokenize(body)

    @api.post("/detokenize", response_model=DetokenizeResponse, responses=ERROR_RESPONSES, tags=["generator"])
    async def detokenize(self, body: DetokenizeRequest) -> DetokenizeResponse:
        """The text of token ids (vLLM's shape)."""
        return await self.tokens.detokenize(body)

    @api.get("/v1/models", response_model=ModelList, responses=ERROR_RESPONSES, tags=["meta"])
    async def models(self) -> ModelList:
        """The served models in OpenAI's list shape, each with seqlab's metadata (role, artifact, metrics)."""
        return await self.meta.models()

    @api.post("/v1/score", response_model=ScoreResponse, responses=ERROR_RESPONSES, tags=["scorer"])
    async def score(self, body: ScoreRequest) -> ScoreResponse:
        """Relevance scores (0-10) of raw texts, normalized exactly as the scorer's training text was."""
        return await self.scoring.score(body)

    @api.post("/v1/generate", response_model=GenerateResponse, responses=_JSON_OR_SSE, tags=["generator"])
    async def generate(self, body: GenerateRequest):
        """Continue a prompt; with ``rerank`` every candidate is scored and they come best first.

        With ``stream: true`` the answer is server-sent events: ``{"index", "text"}`` pieces, then one
        ``{"done": true, "candidates": [...], "usage": {...}}`` event (reranked when asked), then ``[DONE]``.
        """
        return await self.generation.generate(body)

    @api.post("/v1/completions", response_model=CompletionResponse, responses=_JSON_OR_SSE, tags=["openai"])
    async def completions(self, body: CompletionRequest):
        """OpenAI-compatible completions (the official ``openai`` client works unchanged); not a chat API."""
        return await self.completion.create(body)
