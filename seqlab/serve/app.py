"""``build_app(args) -> Application``: the seqlab Serve application (ingress + scorer + generator).

Referenced from ``serve/config.yaml`` as ``import_path: seqlab.serve.app:build_app``; ``seqlab serve`` calls
it too. Nothing starts at import time. (No ``from __future__ import annotations`` here: Serve reads the
builder's annotation to validate its args, and would hand a string annotation a plain dict.)
"""

import os
from typing import Any

from ray import serve

from seqlab.config import ConfigError, validate_config
from seqlab.serve.config import ServeArgs

__all__ = ["build_app", "load_args"]


def load_args(args: "ServeArgs | dict[str, Any]") -> ServeArgs:
    """Validate builder args strictly (an unknown key is an error naming it)."""
    if isinstance(args, ServeArgs):
        return args
    if not isinstance(args, dict):
        raise ConfigError(f"serve args must be a mapping, got {type(args).__name__}")
    return validate_config(ServeArgs, args, "serve args")


def build_app(args: ServeArgs) -> serve.Application:
    """The seqlab app for ``args`` (:class:`ServeArgs`, or a dict of its fields; see serve/config.yaml).

    Serve validates the config file's ``args:`` into :class:`ServeArgs` before calling this (pydantic's
    message names an unknown or bad key); a dict passed directly goes through :func:`load_args`.
    """
    from seqlab.serve.deployments import GeneratorDeployment, ScorerDeployment
    from seqlab.serve.ingress import API_KEY_ENV, Ingress

    cfg = load_args(args)
    plain = cfg.model_dump(mode="json")
    scorer = generator = None
    if cfg.scorer and cfg.scorer_placement == "deployment":
        opts = cfg.scorer_deployment
        scorer = ScorerDeployment.options(**opts.serve_options()).bind(
            cfg.scorer, cfg.device, opts.num_cpus, cfg.scorer_batch.model_dump()
        )
    if cfg.generator:
        opts = cfg.generator_deployment
        generator = GeneratorDeployment.options(**opts.serve_options()).bind(
            cfg.generator, cfg.device, opts.num_cpus, cfg.generator_batch.model_dump()
        )
    ingress_options = cfg.ingress.serve_options()
    if cfg.scorer and cfg.scorer_placement == "ingress":  # each ingress replica holds a scorer
        actor = ingress_options["ray_actor_options"]
        actor["num_cpus"] = actor.get("num_cpus", 0) + cfg.scorer_deployment.num_cpus
        if cfg.scorer_deployment.num_gpus:
            actor["num_gpus"] = actor.get("num_gpus", 0) + cfg.scorer_deployment.num_gpus
    # Serve's access log: one line per request with its id, status and duration
    ingress_options["logging_config"] = {"enable_access_log": cfg.log_requests}
    ingress_options["backpressure_config"] = {
        "status_code": cfg.overload_status,
        "retry_after_s": cfg.retry_after_s,
    }
    key = os.environ.get(API_KEY_ENV)
    if key:  # the replicas may run on other nodes: carry the key to them
        ingress_options["ray_actor_options"]["runtime_env"] = {"env_vars": {API_KEY_ENV: key}}
    return Ingress.options(**ingress_options).bind(scorer, generator, plain)
