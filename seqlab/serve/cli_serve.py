"""``seqlab serve --scorer DIR --generator DIR``: serve both models over HTTP on a local Ray.

Reads the same ``serve/config.yaml`` that ``serve run`` / ``serve deploy`` take (its ``http_options`` and
the seqlab application's ``args``); ``--scorer``/``--generator``/``--host``/``--port`` and dotted
overrides (``--limits.max_texts=16``) go on top. Prints the URL and curl examples once the app answers,
and stops Serve (and the Ray it started) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from seqlab.config import (
    ConfigError,
    add_config_arguments,
    apply_overrides,
    load_yaml,
    parse_overrides,
    validate_config,
    yaml_error,
)
from seqlab.serve.config import ServeArgs

__all__ = ["APP_IMPORT_PATH", "add_arguments", "read_serve_config", "run", "start_local", "wait_until_ready"]

log = logging.getLogger(__name__)
APP_IMPORT_PATH = "seqlab.serve.app:build_app"
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "serve" / "config.yaml"
_HTTP_KEYS = {"host", "port", "request_timeout_s", "keep_alive_timeout_s", "root_path"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--scorer", help="scorer artifact dir or URI (seqlab tune's OUT/best)")
    parser.add_argument("--generator", help="generator artifact dir or URI (seqlab finetune's OUT/model)")
    parser.add_argument("--host", help="address to bind (default: the config's, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default: the config's, else 8000)")
    parser.add_argument("--name", default="seqlab", help="Serve application name (default: seqlab)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="listen beyond loopback (--host 0.0.0.0 ...) without SEQLAB_API_KEY set: anyone who reaches the "
        "port can use the models (refused without this flag)",
    )


def read_serve_config(path: str | Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(http_options, seqlab app args)`` of a Serve config file, checked strictly.

    Serve's own schema (:class:`ray.serve.schema.ServeDeploySchema`) checks the file's structure; the
    seqlab application's ``args`` are checked by :class:`ServeArgs` later, and unknown ``http_options``
    keys are reported here because Serve would drop them silently.
    """
    if path is None:
        return {}, {}
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read serve config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping (Serve's config file format)")
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    http = dict(data.get("http_options") or {})
    unknown = set(http) - _HTTP_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: http_options: unknown key(s) {sorted(unknown)}; known: {sorted(_HTTP_KEYS)}"
        )
    apps = [a for a in data.get("applications") or [] if a.get("import_path") == APP_IMPORT_PATH]
    if not apps:
        raise ConfigError(f"{path}: no application with import_path {APP_IMPORT_PATH}")
    return http, dict(apps[0].get("args") or {})


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _check_artifact(path: str | None, role: str) -> None:
    """Fail early, naming the problem, when ``path`` is not a local artifact of ``role`` (URIs load later)."""
    from seqlab import artifacts

    if path is None or artifacts.is_uri(path):
        return
    local = Path(artifacts.local_path(path))
    if not local.is_dir():
        raise ConfigError(f"{role}: {path} is not a directory")
    stage = artifacts.artifact_stage(local)
    if role == "generator" and stage == "scorer":
        raise ConfigError(
            f"generator: {path} is a scorer artifact, not a generator (is it a scorer artifact? use --scorer)"
        )
    if role == "scorer" and stage not in (None, "scorer"):
        raise ConfigError(
            f"scorer: {path} holds a {stage!r} artifact, not a scorer (is it a generator artifact?)"
        )
    expected = ["model.safetensors", "config.json", "tokenizer.json"] if role == "scorer" else ["config.json"]
    for name in expected:
        if not (local / name).is_file():
            raise ConfigError(f"{role}: {path} is not a {role} artifact: no {name} in it")


def start_local(
    args: ServeArgs,
    http: dict[str, Any],
    name: str = "seqlab",
    route_prefix: str = "/",
    log_level: str = "INFO",
    ready_timeout_s: float = 300.0,
) -> str:
    """Start Serve on the current Ray (proxy on ``http``'s host/port) with the seqlab app; return its URL.

    The proxy drops ``x-request-timeout-seconds`` when this Ray was started by :func:`seqlab.ray_utils.init_ray`
    (it sets ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``; see :mod:`seqlab.serve.edge`).
    """
    from ray import serve
    from ray.serve.config import HTTPOptions

    from seqlab.logs import quiet_libraries

    quiet_libraries()  # `import ray.serve` set its driver logger back to INFO ("Started Serve", "ready at")

    from seqlab.serve.app import build_app

    options = HTTPOptions(**http)
    logging_config = {"log_level": log_level}  # the demo passes WARNING to keep its console readable
    serve.start(http_options=options, logging_config=logging_config)
    serve.run(
        build_app(args), name=name, route_prefix=route_prefix, blocking=False, logging_config=logging_config
    )
    host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
    url = f"http://{host}:{options.port}{route_prefix.rstrip('/')}"
    wait_until_ready(url, ready_timeout_s)
    return url


def wait_until_ready(url: str, timeout_s: float = 300.0) -> None:
    """Poll ``url/readyz`` until it answers 200: every served model has loaded and answered once.

    (``/healthz`` answers as soon as the ingress runs; a first request then could still wait for a model
    replica, or for the first connection to it, past a short ``limits.request_timeout_s``.)
    """
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=10) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:  # not up yet
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"the Serve app at {url} did not become ready within {timeout_s:.0f} s ({last})")


def examples(url: str, args: ServeArgs) -> str:
    """curl and openai-client lines for the routes this app serves."""
    auth = ' -H "Authorization: Bearer $SEQLAB_API_KEY"' if _api_key_set() else ""
    lines = [f"seqlab is serving at {url}  (OpenAPI: {url}/docs)", f"playground: {url}/playground", ""]
    if args.scorer:
        body = json.dumps({"texts": ["الذكاء الاصطناعي يغير العالم", "وصفة سهلة للكعك"]}, ensure_ascii=False)
        lines.append(f"curl -s {url}/v1/score -H 'Content-Type: application/json'{auth} -d '{body}'")
    if args.generator:
        body = json.dumps(
            {
                "prompt": "يعتمد الذكاء الاصطناعي على",
                "max_new_tokens": 24,
                "num_candidates": 3,
                "rerank": bool(args.scorer),
            },
            ensure_ascii=False,
        )
        lines.append(f"curl -s {url}/v1/generate -H 'Content-Type: application/json'{auth} -d '{body}'")
        body = json.dumps(
            {
                "model": args.generator_name,
                "prompt": "يعتمد الذكاء الاصطناعي على",
                "max_tokens": 24,
                "stream": True,
            },
            ensure_ascii=False,
        )
        lines.append(f"curl -sN {url}/v1/completions -H 'Content-Type: application/json'{auth} -d '{body}'")
        lines.append(
            f"python -c \"from openai import OpenAI; c = OpenAI(base_url='{url}/v1', api_key='x'); "
            f"print(c.completions.create(model='{args.generator_name}', prompt='يعتمد', max_tokens=16).choices[0].text)\""
        )
    lines.append(f"curl -s {url}/v1/models{auth}")
    return "\n".join(lines)


def _api_key_set() -> bool:
    import os

    from seqlab.serve.ingress import API_KEY_ENV

    return bool(os.environ.get(API_KEY_ENV))


def resolve(args: argparse.Namespace) -> tuple[ServeArgs, dict[str, Any]]:
    """Config file + flags + dotted overrides -> validated (ServeArgs, http_options)."""
    http, app_args = read_serve_config(args.config)
    if args.scorer is not None:
        app_args["scorer"] = args.scorer
    if args.generator is not None:
        app_args["generator"] = args.generator
    if args.overrides:
        app_args = apply_overrides(app_args, parse_overrides(args.overrides))
    cfg = validate_config(ServeArgs, app_args, "serve args")
    http = {"host": "127.0.0.1", "port": 8000, **http}
    if args.host:
        http["host"] = args.host
    if args.port is not None:
        http["port"] = args.port
    if not 0 < int(http["port"]) < 65536:
        raise ConfigError(f"port must be in 1..65535 (got {http['port']})")
    http.setdefault("request_timeout_s", cfg.limits.request_timeout_s + 5)
    return cfg, http


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond this machine


def _check_cpus(num_cpus: int | None, cfg: ServeArgs) -> None:
    """A local Ray too small for the app's replicas would start and never schedule them: refuse it."""
    if num_cpus is None:
        return
    if num_cpus < 1:
        raise ConfigError(f"--num-cpus must be at least 1 (got {num_cpus})")
    needed = cfg.cpus_needed()
    if sum(needed.values()) > num_cpus:
        parts = ", ".join(f"{name} {cpus:g}" for name, cpus in needed.items())
        raise ConfigError(
            f"--num-cpus {num_cpus} is fewer than the app's replicas reserve ({sum(needed.values()):g}: {parts}); "
            "give more, or lower *_deployment.num_cpus / num_replicas"
        )


def run(args: argparse.Namespace) -> int:
    cfg, http = resolve(args)
    _check_cpus(args.num_cpus, cfg)
    if not _is_loopback(str(http["host"])) and not _api_key_set() and not args.allow_unauthenticated:
        raise ConfigError(
            f"--host {http['host']} listens beyond this machine and SEQLAB_API_KEY is not set: set it (every "
            "route but /healthz then needs the key), or pass --allow-unauthenticated to serve without auth"
        )
    _check_artifact(cfg.scorer, "scorer")
    _check_artifact(cfg.generator, "generator")
    if not _port_free(http["host"], int(http["port"])):
        raise ConfigError(
            f"cannot bind {http['host']}:{http['port']}: the port is in use (pick another --port)"
        )

    import ray
    from ray import serve

    from seqlab.ray_utils import init_ray

    started = init_ray(num_cpus=args.num_cpus)
    stop = {"now": False, "signal": 0}

    def _stop(signum, frame):  # Ctrl-C and SIGTERM: leave the loop, shut Serve down
        stop["now"], stop["signal"] = True, signum

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _stop)}
    try:
        url = start_local(cfg, http, name=args.name)  # Ctrl-C here: KeyboardInterrupt, as usual
        # Once serving, our own SIGINT handler (as uvicorn has): whatever Ray, Serve or a parent process left
        # on SIGINT (another handler, or SIG_IGN in a background job), Ctrl-C now stops the server.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _stop)
        print(examples(url, cfg), flush=True)
        if not _is_loopback(str(http["host"])):
            print(f"listening on {http['host']}:{http['port']}: reachable from other machines", flush=True)
        print("\nPress Ctrl-C to stop.", flush=True)
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop["signal"] = signal.SIGINT
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("stopping Serve...", file=sys.stderr, flush=True)
        try:
            serve.shutdown()
        finally:
            if started:
                ray.shutdown()
    # Stopped by a signal: 128 + its number (130 Ctrl-C, 143 SIGTERM), as every other long-running verb.
    return 128 + int(stop["signal"]) if stop["signal"] else 0
