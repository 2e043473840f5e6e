"""The Serve app's typed arguments: ``build_app(ServeArgs)``, ``serve/config.yaml``'s ``args:``, ``seqlab serve``.

Serve itself ignores unknown keys in its config file; everything under ``args:`` is ours and validated
strictly here (``extra="forbid"``), so a typo such as ``max_ongoing_request`` is an error naming the key.
No Ray or torch import: the CLI and the tests validate configs without starting anything.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from seqlab.config import Config

__all__ = [
    "AutoscalingOptions",
    "BatchOptions",
    "DeployJobConfig",
    "DeploymentOptions",
    "HttpConfig",
    "LimitsConfig",
    "ServeArgs",
]


class AutoscalingOptions(Config):
    """Serve's replica autoscaling for one deployment (replaces ``num_replicas`` when set)."""

    min_replicas: int = Field(
        1, ge=0, description="fewest replicas (0 lets an idle deployment scale to zero)"
    )
    max_replicas: int = Field(2, ge=1, description="most replicas")
    target_ongoing_requests: float = Field(
        8, gt=0, description="requests in flight per replica that autoscaling aims for"
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingOptions:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        return self


class DeploymentOptions(Config):
    """Replicas and resources of one deployment."""

    num_replicas: int = Field(1, ge=1, description="fixed replica count (ignored when autoscaling is set)")
    autoscaling: AutoscalingOptions | None = Field(None, description="autoscale between min and max replicas")
    num_cpus: float = Field(1, ge=0, description="CPUs reserved per replica (also its torch thread count)")
    num_gpus: float = Field(
        0, ge=0, description="GPUs per replica; fractions share one GPU (e.g. 0.5: two replicas per GPU)"
    )
    max_ongoing_requests: int = Field(
        64, ge=1, description="requests a replica works on at once; must be >= the batch size so batches fill"
    )
    max_queued_requests: int = Field(
        128, ge=-1, description="requests waiting for a replica before new ones get 503/429 (-1: unbounded)"
    )
    max_replicas_per_node: int | None = Field(
        None, ge=1, description="at most this many replicas on one node (1: every replica on its own node)"
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources per replica, to pin it to the nodes that advertise them",
    )

    @property
    def min_replicas(self) -> int:
        """Replicas Serve starts with (``num_replicas``, or autoscaling's ``min_replicas``)."""
        return self.autoscaling.min_replicas if self.autoscaling is not None else self.num_replicas

    def serve_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options(...)``."""
        actor: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            actor["resources"] = dict(self.resources)
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "ray_actor_options": actor,
        }
        if self.max_replicas_per_node is not None:
            options["max_replicas_per_node"] = self.max_replicas_per_node
        if self.autoscaling is not None:
            options["autoscaling_config"] = self.autoscaling.model_dump()
        else:
            options["num_replicas"] = self.num_replicas
        return options


class BatchOptions(Config):
    """Batching across requests: dynamic for the scorer (``@serve.batch``), continuous for the generator."""

    max_batch_size: int = Field(64, ge=1, description="most items (texts, or generation rows) in one batch")
    batch_wait_timeout_s: float = Field(
        0.005,
        ge=0,
        le=10,
        description="scorer: how long a batch waits to fill after its first request; generator: how long an "
        "idle replica waits for simultaneous arrivals before it starts (later ones join between steps)",
    )
    stream_interval_s: float = Field(
        0.05,
        ge=0,
        le=5,
        description="(generator) send streamed text at most this often: the steps decoded meanwhile go in "
        "one message (0: every token on its own)",
    )


# Defaults fit a 2-CPU laptop: ingress 0.25 + scorer 0.5 + generator 1 CPU.
def _scorer_defaults() -> DeploymentOptions:
    return DeploymentOptions(num_cpus=0.5, max_ongoing_requests=128, max_queued_requests=256)


def _generator_defaults() -> DeploymentOptions:
    return DeploymentOptions(max_ongoing_requests=32, max_queued_requests=64)


class LimitsConfig(Config):
    """What one request may ask for. Past a limit the request gets 413 (size) or 422 (value) naming the field."""

    max_texts: int = Field(64, ge=1, description="texts per /v1/score request")
    max_text_chars: int = Field(20_000, ge=1, description="characters per text to score")
    max_prompt_chars: int = Field(20_000, ge=1, description="characters per prompt")
    max_prompts: int = Field(8, ge=1, description="prompts per /v1/completions request (prompt as a list)")
    max_new_tokens: int = Field(256, ge=1, description="largest max_tokens / max_new_tokens accepted")
    max_candidates: int = Field(8, ge=1, le=64, description="largest n / num_candidates accepted")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body")
    prompt_overflow: Literal["truncate", "reject"] = Field(
        "truncate",
        description="a prompt longer than the model's context minus max_tokens: 'truncate' keeps its end "
        "(the response says prompt_truncated), 'reject' answers 413",
    )
    request_timeout_s: float = Field(
        55,
        gt=0,
        description="the app's own deadline per request: 408 after it (a stream ends with an error event). "
        "Keep it below http_options.request_timeout_s so the app, not the proxy, answers",
    )


class ServeArgs(Config):
    """``build_app(args)``: which artifacts to serve and how.

    Either model may be left out; its routes then answer 404 saying so.
    """

    scorer: str | None = Field(None, description="scorer artifact directory or URI (seqlab tune's OUT/best)")
    generator: str | None = Field(
        None, description="generator artifact directory or URI (seqlab finetune's OUT/model)"
    )
    scorer_name: str = Field("seqlab-scorer", min_length=1, description="the scorer's id in /v1/models")
    generator_name: str = Field(
        "seqlab-generator",
        min_length=1,
        description="the generator's id in /v1/models and completions' model",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto': CUDA when the replica was given a GPU, else CPU"
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="per-request limits")
    ingress: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(
            num_cpus=0.25, max_ongoing_requests=256, max_queued_requests=512
        ),
        description="the FastAPI ingress (validation, routing, SSE)",
    )
    scorer_deployment: DeploymentOptions = Field(
        default_factory=_scorer_defaults, description="the scorer's replicas"
    )
    scorer_placement: Literal["deployment", "ingress"] = Field(
        "deployment",
        description="'deployment': the scorer has replicas of its own, scaled apart from the ingress; "
        "'ingress': each ingress replica loads the scorer and scores in its own process (one hop and one "
        "serialization fewer per request; scorer_deployment's num_cpus/num_gpus are added to the ingress's, "
        "its other fields are not used)",
    )
    generator_deployment: DeploymentOptions = Field(
        default_factory=_generator_defaults, description="the generator's replicas"
    )
    scorer_batch: BatchOptions = Field(
        default_factory=BatchOptions, description="texts batched per forward pass"
    )
    generator_batch: BatchOptions = Field(
        default_factory=lambda: BatchOptions(max_batch_size=8, batch_wait_timeout_s=0.0),
        description="generation rows (requests x candidates) decoded together per step",
    )
    overload_status: Literal[503, 429] = Field(503, description="status of an overload answer")

    def cpus_needed(self) -> dict[str, float]:
        """CPUs each deployment's starting replicas reserve (the models left out reserve none)."""
        parts = {"ingress": self.ingress}
        if self.scorer:
            parts["scorer"] = self.scorer_deployment
        if self.generator:
            parts["generator"] = self.generator_deployment
        needed = {name: d.num_cpus * d.min_replicas for name, d in parts.items()}
        if self.scorer and self.scorer_placement == "ingress":  # the ingress replicas hold the scorer
            needed["ingress"] += self.scorer_deployment.num_cpus * self.ingress.min_replicas
            del needed["scorer"]
        return needed

    retry_after_s: float = Field(1.0, ge=0, description="Retry-After sent with overload answers")
    log_requests: bool = Field(
        True,
        description="Serve's access log on the ingress: one line per request with its id, status, duration",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServeArgs:
        if self.scorer is None and self.generator is None:
            raise ValueError("give at least one of scorer or generator")
        if self.scorer_batch.max_batch_size < self.limits.max_texts:
            raise ValueError(
                f"scorer_batch.max_batch_size ({self.scorer_batch.max_batch_size}) must be >= "
                f"limits.max_texts ({self.limits.max_texts}): one request's texts must fit a batch"
            )
        if self.generator_batch.max_batch_size < self.limits.max_candidates:
            raise ValueError(
                f"generator_batch.max_batch_size ({self.generator_batch.max_batch_size}) must be >= "
                f"limits.max_candidates ({self.limits.max_candidates})"
            )
        return self


class HttpConfig(Config):
    """Serve's HTTP proxy (applies when this call starts Serve; a running Serve keeps its own)."""

    host: str = Field(
        "127.0.0.1", description="address to bind; 0.0.0.0 accepts other machines (set SEQLAB_API_KEY)"
    )
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of every node's proxy")
    request_timeout_s: float = Field(60, gt=0, description="the proxy's deadline (408)")


class DeployJobConfig(Config):
    """``jobs/deploy.yaml`` / ``seqlab deploy``: start or update the app on a running cluster, then return."""

    name: str = Field("seqlab", min_length=1, description="Serve application name (a redeploy updates it)")
    route_prefix: str = Field("/", pattern=r"^/", description="URL prefix of the app")
    http: HttpConfig = Field(default_factory=HttpConfig, description="proxy options")
    app: ServeArgs = Field(
        default_factory=lambda: ServeArgs(scorer="runs/demo/tune/best", generator="runs/demo/finetune/model"),
        description="what to serve (ServeArgs): artifact paths or URIs reachable from every node",
    )
    wait_ready_s: float = Field(
        600, gt=0, description="how long to wait for the replicas to load their models"
    )
