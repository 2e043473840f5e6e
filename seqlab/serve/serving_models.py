"""What the app serves and how it is: ``/v1/models``, ``/readyz``, ``/metrics``, and the generator's
tokenizer (``/tokenize``, ``/detokenize``, vLLM's shapes)."""

import asyncio

from seqlab.serve import metrics
from seqlab.serve.errors import ApiError
from seqlab.serve.schemas import (
    DetokenizeRequest,
    DetokenizeResponse,
    HealthResponse,
    ModelCard,
    ModelList,
    ReadyResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from seqlab.serve.serving import Serving

__all__ = ["ServingModels", "ServingTokens"]

ROLES = ("scorer", "generator")


class ServingModels(Serving):
    """The served models: their cards, liveness, readiness, and the replica's metrics."""

    def health(self) -> HealthResponse:
        return HealthResponse(scorer=self.ctx.serves("scorer"), generator=self.ctx.serves("generator"))

    async def ready(self) -> ReadyResponse:
        """200 once every served model has loaded and answers; else a 503 :class:`ApiError`."""
        for role in ROLES:
            if self.ctx.serves(role):
                try:
                    await asyncio.wait_for(self.ctx.card(role), timeout=5)
                except (ApiError, asyncio.TimeoutError):
                    raise ApiError(
                        503, f"the {role} is not ready yet", retry_after=self.args.retry_after_s
                    ) from None
        return ReadyResponse(scorer=self.ctx.serves("scorer"), generator=self.ctx.serves("generator"))

    async def models(self) -> ModelList:
        """OpenAI's list shape, each model with seqlab's metadata (role, artifact, metrics)."""
        cards = []
        for role, name in zip(ROLES, (self.args.scorer_name, self.args.generator_name), strict=True):
            if self.ctx.serves(role):
                cards.append(ModelCard(id=name, created=self.ctx.created, seqlab=await self.ctx.card(role)))
        return ModelList(data=cards)

    async def metrics_text(self) -> str:
        """Prometheus text format: requests and latency by route and status, tokens, generator queue."""
        gauges: dict[str, float] = {}
        if self.ctx.generator is not None:
            try:
                stats = await asyncio.wait_for(self.ctx.generator.stats.remote(), timeout=2)
                gauges = {
                    "generator_waiting": stats["waiting"],
                    "generator_running_rows": stats["running_rows"],
                }
            except Exception:  # a metrics scrape never fails because a replica is busy or restarting
                pass
        return metrics.METRICS.render(gauges)


class ServingTokens(Serving):
    """The generator's tokenizer, both ways."""

    async def tokenize(self, body: TokenizeRequest) -> TokenizeResponse:
        generator = self.ctx.need("generator")
        self.ctx.check_model(body.model)
        self.ctx.check_prompt(body.prompt, "prompt")
        answer = await self.ctx.deadline().call(
            lambda: generator.tokenize.remote(body.prompt, body.add_special_tokens), "generator"
        )
        return TokenizeResponse(**answer)

    async def detokenize(self, body: DetokenizeRequest) -> DetokenizeResponse:
        generator = self.ctx.need("generator")
        self.ctx.check_model(body.model)
        if len(body.tokens) > self.limits.max_prompt_chars:
            raise ApiError(
                413,
                f"tokens has {len(body.tokens)} ids; the limit is {self.limits.max_prompt_chars}",
                "tokens",
            )
        text = await self.ctx.deadline().call(lambda: generator.detokenize.remote(body.tokens), "generator")
        return DetokenizeResponse(prompt=text)
