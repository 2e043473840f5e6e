"""``seqlab bench serve``: the seqlab Serve app on both serving paths vs bare FastAPI servers, one run.

Three servers side by side (:mod:`seqlab.bench.servers`), each in processes of its own:

* ``bare FastAPI``: uvicorn in a subprocess, one request at a time (below);
* ``Serve default``: the seqlab app on a local Ray with Ray's default Python HTTP proxy;
* ``Serve fast path``: the same app on another local Ray with Serve's fast path, as ``seqlab serve`` runs it
  (HAProxy in front, direct ingress, gRPC between deployments: :mod:`seqlab.serve.fastpath`).

Each Serve app serves every model asked for (scorer and generator), so each path's Ray starts once. Two
halves (``--only score|completions`` runs one):

* **/v1/score** — throughput (requests/s and texts/s) and p50/p99 latency per concurrency level
  (``--concurrency``, default 1, 8, 32, 64). Serve batches texts across requests; the bare server loads
  the same scorer with :func:`seqlab.models.load_scorer` and scores one request at a time (a plain ``def``
  route calling ``scorer.predict(texts)`` under a lock, so requests never overlap). Every request carries
  the same ``TEXTS_PER_REQUEST`` generated Arabic documents of 300-800 characters for every server.
* **/v1/completions**, streamed — aggregate new tokens/s and time to first token (TTFT, the first SSE
  event carrying text) at concurrency 1 and 8 (``--completion-concurrency``). Serve decodes concurrent
  requests together; the bare server's one worker thread calls transformers' ``model.generate`` for one
  request at a time and streams every token through a ``BaseStreamer`` as SSE (so its TTFT is real, not
  the full latency; at concurrency 8 it includes the wait behind the requests ahead). All decode greedily
  (``temperature: 0``) with the same ``max_tokens``; tokens are counted from the stream's ``usage`` (every
  server sends OpenAI's ``stream_options.include_usage`` event).

The goals (printed with a verdict) are the fast path's: /v1/score at concurrency 32 >= ``SCORE_GOAL`` x the
bare server's requests/s with p99 at most half of its; streamed completions at concurrency 8 >=
``COMPLETION_GOAL`` x its tokens/s, and TTFT p50 at 8 at most ``TTFT_GROWTH`` x that at 1. The default
path's ratios are printed beside them.

The load comes from a separate process per level (``_load_main``: one ``httpx.AsyncClient``, ``c``
workers sharing one counter), so the client never shares an interpreter with a server. Each level stops
after ``--requests`` (``--completion-requests``) requests or ``--seconds``, whichever comes first; a
warm-up round per server precedes the levels and counts nowhere. Throughput = successful requests (or
their tokens) / the level's wall time. Only 127.0.0.1 is ever targeted. The servers take turns, level by
level (bare, default, fast path), so a change in the machine's load — this is a small shared machine —
hits all alike; the load average at start and end is printed.

Server CPU: the CPU time the server side spends during the levels, per request (score) or per token
(completions): the bare server's process, or Serve's processes split by part (proxy, ingress, model
replica, controller, the rest of Ray). On a 2-core machine this, not the model, bounds throughput. Also
printed: the CPU the idle side used while the other was loaded (Ray's and Serve's background work runs
during the bare levels and counts against the bare server; an idle uvicorn uses none).

Fairness, explicitly: the bare servers run with 1 torch thread; each Serve model replica reserves
``--replica-cpus`` CPUs (default 1) and seqlab sets its torch threads to that; the ingress reserves 0 CPUs
(Serve's proxy and ingress share what is left with the load client). ``TOKENIZERS_PARALLELISM=false``
everywhere. Neither side logs requests (seqlab's
``log_requests`` off, uvicorn's access log off; Ray Serve's own replica logs stay on, as in production).
The benchmark serves without an API key (``SEQLAB_API_KEY`` is dropped for its Ray).

Models: without ``--scorer``/``--generator`` the benchmark builds, in a temp dir, a scorer (GRU, embedding
64, hidden 64, word-level vocabulary of the generated corpus) and a generator of the offline default GPT-2
shape (``FinetuneJobConfig`` defaults: 4 layers x 256, byte-level BPE of up to 8000 tokens), both with
random weights: speed does not depend on the weights. The generator's end-of-text embedding row is
zeroed, so its logit is 0 and greedy decoding never stops early: every request generates ``max_tokens``.

Memory: RSS after the load of the Serve replica processes (``ray::ServeReplica:...``) and of the proxy,
next to the bare servers' RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seqlab.bench.load import run_load
from seqlab.bench.serve_report import (
    BARE,
    PROMPT_CHARS,
    SERVE_PATHS,
    TEXT_CHARS,
    TEXTS_PER_REQUEST,
    print_completions,
    print_score,
    report_errors,
    summarize,
)
from seqlab.bench.servers import (
    RAY_CPUS,
    bare_servers,
    cpu_meter,
    processes_under,
    psutil_module,
    rss_mb,
    serve_rss_mb,
    serve_servers,
)
from seqlab.config import ConfigError

# --- defaults, in one place -------------------------------------------------------------------------
SCORE_LEVELS = "1,8,32,64"  # concurrent clients for /v1/score (the levels)
COMPLETION_LEVELS = "1,8"  # concurrent clients for /v1/completions
SCORE_REQUESTS = 400  # requests per /v1/score level: ~6 batches of 64 clients
COMPLETION_REQUESTS = 32  # requests per /v1/completions level: 4 full batches at concurrency 8
LEVEL_SECONDS = 20.0  # cap per level: a slow server ends a level early instead of the run running long
MAX_TOKENS = 64  # new tokens per completion
REPLICA_CPUS = 1.0  # CPUs reserved per model replica = its torch threads (the bare servers use 1 thread)
SCORER_BATCH = 128  # texts per scorer batch: 32 requests of 4 texts
# How long a scorer batch waits to fill. 30 and 60 ms were tried too: no change beyond the run-to-run noise
# at concurrency 32 here (the proxy and the ingress, not the batch, bound throughput), and 5 ms keeps the
# latency at concurrency 1 low.
SCORER_WAIT_S = 0.005
SCORER_PLACEMENT = "ingress"  # ServeArgs.scorer_placement for the benchmark's app
GENERATOR_BATCH = 8  # generation rows decoded together: all 8 clients of the top level
# How long an idle generator replica waits before it starts decoding. With continuous batching a request
# that arrives mid-flight joins at the next step, so there is nothing to wait for (with static batches,
# 100 ms were needed here for the 8 clients' requests to land in one batch, at 200 ms of TTFT).
GENERATOR_WAIT_S = 0.0
CORPUS_SEED = 0
TRAIN_DOCS = 2000  # generated documents the tokenizers are trained on (the bodies come from the same set)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scorer", default=None, help="scorer artifact dir (default: a tiny random one)")
    parser.add_argument("--generator", default=None, help="generator model/ dir (default: a random one)")
    parser.add_argument("--only", choices=("score", "completions"), default=None, help="run one half")
    parser.add_argument("--concurrency", default=SCORE_LEVELS, help="/v1/score levels, comma-separated")
    parser.add_argument("--completion-concurrency", default=COMPLETION_LEVELS, help="/v1/completions levels")
    parser.add_argument("--requests", type=int, default=SCORE_REQUESTS, help="/v1/score requests per level")
    parser.add_argument(
        "--completion-requests", type=int, default=COMPLETION_REQUESTS, help="completions per level"
    )
    parser.add_argument("--seconds", type=float, default=LEVEL_SECONDS, help="time cap per level")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="new tokens per completion")
    parser.add_argument("--replica-cpus", type=float, default=REPLICA_CPUS, help="CPUs per model replica")
    parser.add_argument("--scorer-batch", type=int, default=SCORER_BATCH, help="texts per scorer batch")
    parser.add_argument("--scorer-wait", type=float, default=SCORER_WAIT_S, help="scorer batch wait (s)")
    parser.add_argument(
        "--scorer-placement",
        choices=("deployment", "ingress"),
        default=SCORER_PLACEMENT,
        help="the scorer in replicas of its own, or in the ingress replica (ServeArgs.scorer_placement)",
    )
    parser.add_argument("--generator-batch", type=int, default=GENERATOR_BATCH, help="rows per decode batch")
    parser.add_argument(
        "--generator-wait",
        type=float,
        default=GENERATOR_WAIT_S,
        help="idle generator wait before decoding (s)",
    )
    parser.add_argument(
        "--stream-interval",
        type=float,
        default=None,
        help="seconds of decoding merged into one streamed message (default: the app's)",
    )


def _levels(text: str, flag: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: comma-separated integers expected, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise ConfigError(f"{flag}: levels must be >= 1 (got {text!r})")
    return levels


# --- inputs ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def documents(n_docs: int, seed: int = CORPUS_SEED) -> tuple[str, ...]:
    """The texts of ``n_docs`` generated documents (cached: the models and the bodies share them)."""
    from seqlab.synth.corpus import generate_documents

    return tuple(d.text for d in generate_documents(n_docs, seed))


def score_bodies(n_bodies: int, seed: int = CORPUS_SEED) -> list[dict[str, list[str]]]:
    """``n_bodies`` /v1/score bodies of :data:`TEXTS_PER_REQUEST` generated documents of 300-800 chars."""
    lo, hi = TEXT_CHARS
    need = n_bodies * TEXTS_PER_REQUEST
    texts = [t for t in documents(max(TRAIN_DOCS, 4 * need), seed) if lo <= len(t) <= hi][:need]
    return [{"texts": texts[i : i + TEXTS_PER_REQUEST]} for i in range(0, len(texts), TEXTS_PER_REQUEST)]


def completion_bodies(n_bodies: int, max_tokens: int, seed: int = CORPUS_SEED) -> list[dict[str, Any]]:
    """Streamed, greedy /v1/completions bodies, each with its own prompt (a document's start)."""
    return [
        {
            "model": "seqlab-generator",
            "prompt": text[:PROMPT_CHARS].rsplit(" ", 1)[0],
            "max_tokens": max_tokens,
            "temperature": 0,  # greedy on both servers
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for text in documents(max(TRAIN_DOCS, n_bodies), seed)[-n_bodies:]  # not the scored texts
    ]


def make_scorer(path: Path, seed: int = CORPUS_SEED) -> Path:
    """A scorer artifact: GRU, embedding 64, hidden 64, random weights, vocabulary of the generated corpus."""
    import torch

    from seqlab.models import RNNRegressor, TokenizerConfig, save_scorer, train_tokenizer
    from seqlab.text import normalize

    texts = [normalize(t) for t in documents(TRAIN_DOCS, seed)]
    tok_cfg = TokenizerConfig()
    tokenizer = train_tokenizer(texts, tok_cfg)
    torch.manual_seed(seed)
    model = RNNRegressor(tokenizer.get_vocab_size(), embed_dim=64, cell="gru", hidden=64)
    save_scorer(str(path), model, tokenizer, tok_cfg, {}, architecture="GRU")
    return path


def make_generator(path: Path, seed: int = CORPUS_SEED) -> Path:
    """A generator artifact of the offline default GPT-2 shape, random weights, end-of-text unreachable."""
    import torch

    from seqlab.artifacts import write_manifest
    from seqlab.lm.config import FinetuneJobConfig
    from seqlab.lm.model import ModelSpec, init_model, small_gpt2_config
    from seqlab.lm.tokenizer import train_bpe_tokenizer

    cfg = FinetuneJobConfig().model
    tokenizer = train_bpe_tokenizer(documents(TRAIN_DOCS, seed), cfg.vocab_size, cfg.min_frequency)
    eos = tokenizer.eos_token_id
    gpt2 = small_gpt2_config(cfg, vocab_size=len(tokenizer), eos_token_id=eos)
    model = init_model(ModelSpec(gpt2_config=gpt2.to_dict(), seed=seed))
    with torch.no_grad():  # tied head: a zero row gives end-of-text logit 0, never the argmax in practice
        model.transformer.wte.weight[eos].zero_()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    write_manifest(path, stage="finetune", metrics={}, model_source="scratch")
    return path


# --- the bare baselines (run in a subprocess: ``_bare_main``) -------------------------------------------
# Their request bodies live at module level: FastAPI resolves a route's (string) annotations in the
# module's namespace, not in the function that defines the route.


def serve_args(args: argparse.Namespace, scorer: str | None = None, generator: str | None = None) -> Any:
    """The Serve app's settings for the benchmark (printed with the results)."""
    from seqlab.serve.config import ServeArgs

    replica = {"num_cpus": args.replica_cpus, "max_ongoing_requests": 256, "max_queued_requests": 512}
    return ServeArgs.model_validate(
        {
            "scorer": scorer,
            "generator": generator,
            "device": "cpu",
            "ingress": {"num_cpus": 0, "max_ongoing_requests": 512, "max_queued_requests": 1024},
            "scorer_deployment": replica,
            "generator_deployment": {**replica, "max_ongoing_requests": max(32, args.generator_batch)},
            "scorer_batch": {"max_batch_size": args.scorer_batch, "batch_wait_timeout_s": args.scorer_wait},
            "scorer_placement": args.scorer_placement,
            "generator_batch": {
                "max_batch_size": args.generator_batch,
                "batch_wait_timeout_s": args.generator_wait,
                **({} if args.stream_interval is None else {"stream_interval_s": args.stream_interval}),
            },
            "log_requests": False,
        }
    )


_T0 = time.monotonic()


def _progress(message: str) -> None:
    print(f"[bench serve {time.monotonic() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


# --- the benchmark --------------------------------------------------------------------------------------


ROLES = {"score": "scorer", "completions": "generator"}  # benchmark half -> the model it serves


def _plan(args: argparse.Namespace, root: Path, levels: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """Per half (the keys of ``levels``): the artifact, the request bodies, the levels, requests per level."""
    plans = {}
    if "score" in levels:
        plans["score"] = {
            "artifact": args.scorer or str(make_scorer(root / "scorer")),
            "bodies": score_bodies(max(64, min(args.requests, 256))),
            "levels": levels["score"],
            "requests": args.requests,
        }
    if "completions" in levels:
        plans["completions"] = {
            "artifact": args.generator or str(make_generator(root / "generator")),
            "bodies": completion_bodies(64, args.max_tokens),
            "levels": levels["completions"],
            "requests": args.completion_requests,
        }
    return plans


def _measure(
    half: str,
    plan: dict[str, Any],
    seconds: float,
    targets: dict[str, tuple[str, dict[int, tuple[str, Any]]]],
) -> dict[str, dict[str, Any]]:
    """Load every target (``name -> (url, its processes)``) level by level, the targets in turn.

    Each target first gets a warm-up round (not counted anywhere: lazy imports, connection set-up). Then,
    at each level, each target in turn: a drift in the machine's load hits both alike. Per target: the
    level rows, its CPU ms per unit of work (a request, or a token) by part, and the CPU share of a core
    the *other* targets' processes used while it was loaded (their idle background).
    """
    everyone = {pid: proc for _, procs in targets.values() for pid, proc in procs.items()}
    warm = min(8, max(plan["levels"]))
    for name, (url, _) in targets.items():
        _progress(f"{half}: warming up {name} at {url}")
        run_load(url, half, plan["bodies"], [warm], warm * (4 if half == "score" else 1), seconds)
    out = {name: {"rows": [], "cpu_s": {}, "units": 0, "wall": 0.0, "background_s": 0.0} for name in targets}
    for concurrency in plan["levels"]:
        for name, (url, procs) in targets.items():
            _progress(f"{half}: {name} at concurrency {concurrency}")
            with cpu_meter(everyone) as spent:
                [level] = run_load(url, half, plan["bodies"], [concurrency], plan["requests"], seconds)
            report_errors(f"{name} {half}", [level])
            acc = out[name]
            acc["rows"].append(summarize(level))
            acc["units"] += len(level["latency"]) if half == "score" else level["items"]
            acc["wall"] += level["wall"]
            for pid, (part, _) in everyone.items():
                if pid in procs:
                    acc["cpu_s"][part] = acc["cpu_s"].get(part, 0.0) + spent.get(pid, 0.0)
                else:
                    acc["background_s"] += spent.get(pid, 0.0)
    return {
        name: {
            "rows": acc["rows"],
            "cpu_ms": {part: 1000 * sec / max(acc["units"], 1) for part, sec in acc["cpu_s"].items()},
            "background_share": acc["background_s"] / max(acc["wall"], 1e-9),
        }
        for name, acc in out.items()
    }


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so the same clean-up runs as on Ctrl-C (servers, Serve, Ray).

    Once Ray is up, its own handler in this process takes SIGTERM and ends it at once; Ray then stops its
    processes itself, and the bare servers exit when they see their parent gone (``_exit_with_parent``).
    """

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    for flag in ("requests", "completion_requests", "max_tokens", "seconds"):
        if getattr(args, flag) <= 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be > 0")
    levels = {
        "score": _levels(args.concurrency, "--concurrency"),
        "completions": _levels(args.completion_concurrency, "--completion-concurrency"),
    }
    halves = [args.only] if args.only else list(levels)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one tokenizer thread in every process, both sides
    os.environ.pop("SEQLAB_API_KEY", None)  # the benchmark's app serves without auth
    load_start = os.getloadavg()
    results: dict[str, dict[str, dict[str, Any]]] = {half: {} for half in halves}
    memory: dict[str, dict[str, float]] = {BARE: {}}
    about: dict[str, str] = {}

    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="seqlab-bench-serve-") as tmp:
        root = Path(tmp)
        _progress("building the models and the request bodies")
        plans = _plan(args, root, {half: levels[half] for half in halves})
        bare_models = {half: plan["artifact"] for half, plan in plans.items()}
        # One app with every model asked for, per serving path: each path's Ray starts once for both halves.
        cfg = serve_args(args, **{ROLES[half]: plan["artifact"] for half, plan in plans.items()})
        _progress("starting the bare servers and the Serve app on each path (a local Ray each)")
        with bare_servers(bare_models, root) as bare, serve_servers(cfg, root) as serves:
            psutil = psutil_module()
            serve_procs = {name: processes_under(pid) for name, (_, pid) in serves.items()}
            for half, plan in plans.items():
                url, pid, about[half] = bare[half]
                targets = {BARE: (url, {pid: ("server", psutil.Process(pid))})}
                targets |= {name: (serves[name][0], serve_procs[name]) for name in SERVE_PATHS}
                results[half] = _measure(half, plan, args.seconds, targets)
                memory[BARE][f"{half} server"] = rss_mb(pid)
            for name in SERVE_PATHS:
                memory[name] = serve_rss_mb(serve_procs[name])
        _progress("done; Serve and Ray are shut down")

    models = "; ".join(f"{ROLES[h]}: {about[h]}" for h in halves)
    print(
        f"seqlab bench serve: os.cpu_count()={os.cpu_count()}, load average {load_start[0]:.2f} "
        f"{load_start[1]:.2f} {load_start[2]:.2f} at start; {models}"
    )
    print(
        f"Serve: one app serving both models per path, each on a local Ray of {RAY_CPUS} CPUs; ingress 0 CPUs (plus the scorer's when it holds it); model replica {args.replica_cpus:g} CPU(s) "
        f"= torch threads; scorer in the {args.scorer_placement}, batch {args.scorer_batch} texts / wait "
        f"{args.scorer_wait * 1000:g} ms; "
        f"generator batch {args.generator_batch} rows / wait {args.generator_wait * 1000:g} ms. "
        f"Bare: uvicorn, 1 torch thread, one request at a time. Per level: {args.requests} score / "
        f"{args.completion_requests} completion requests or {args.seconds:g} s"
    )
    if "score" in results:
        print_score(results["score"], levels["score"])
    if "completions" in results:
        print_completions(results["completions"], levels["completions"], args.max_tokens)
    print(
        "\nmemory (RSS after load): "
        + "; ".join(
            f"{group}: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in parts.items())
            for group, parts in memory.items()
        )
    )
    print(f"1-min load average at end {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0
