"""``seqlab bench serve``: the seqlab Serve app vs bare FastAPI servers, loaded from another process.

Two halves (``--only score|completions`` runs one):

* **/v1/score** — throughput (requests/s and texts/s) and p50/p99 latency per concurrency level
  (``--concurrency``, default 1, 8, 32, 64) of (a) the seqlab Serve app with the scorer only, batching
  texts across requests, and (b) a bare FastAPI + uvicorn server in a subprocess that loads the same
  scorer with :func:`seqlab.models.load_scorer` and scores one request at a time (a plain ``def`` route
  calling ``scorer.predict(texts)`` under a lock, so requests never overlap). Every request carries the
  same ``TEXTS_PER_REQUEST`` generated Arabic documents of 300-800 characters for both servers.
* **/v1/completions**, streamed — aggregate new tokens/s and time to first token (TTFT, the first SSE
  event carrying text) at concurrency 1 and 8 (``--completion-concurrency``) of (a) the Serve app with
  the generator only, decoding concurrent requests together, and (b) a bare FastAPI server whose one
  worker thread calls transformers' ``model.generate`` for one request at a time and streams every token
  through a ``BaseStreamer`` as SSE (so its TTFT is real, not the full latency; at concurrency 8 it
  includes the wait behind the requests ahead). Both decode greedily (``temperature: 0``) with the same
  ``max_tokens``; tokens are counted from the stream's ``usage`` (both servers send OpenAI's
  ``stream_options.include_usage`` event).

The load comes from a separate process per level (``_load_main``: one ``httpx.AsyncClient``, ``c``
workers sharing one counter), so the client never shares an interpreter with a server. Each level stops
after ``--requests`` (``--completion-requests``) requests or ``--seconds``, whichever comes first; a
warm-up round per server precedes the levels and counts nowhere. Throughput = successful requests (or
their tokens) / the level's wall time. Only 127.0.0.1 is ever targeted. Both servers of a half run side
by side and take turns, level by level (bare, then Serve), so a change in the machine's load — this is
a small shared machine — hits both alike; the load average at start and end is printed.

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
import asyncio
import contextlib
import functools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from seqlab.config import ConfigError

# --- defaults, in one place -------------------------------------------------------------------------
HOST = "127.0.0.1"  # the only address the benchmark binds or targets
SCORE_LEVELS = "1,8,32,64"  # concurrent clients for /v1/score (the levels)
COMPLETION_LEVELS = "1,8"  # concurrent clients for /v1/completions
SCORE_REQUESTS = 400  # requests per /v1/score level: ~6 batches of 64 clients
COMPLETION_REQUESTS = 32  # requests per /v1/completions level: 4 full batches at concurrency 8
LEVEL_SECONDS = 20.0  # cap per level: a slow server ends a level early instead of the run running long
TEXTS_PER_REQUEST = 4  # texts per /v1/score body
TEXT_CHARS = (300, 800)  # length range of the texts to score (realistic paragraphs)
PROMPT_CHARS = 120  # prompt length in characters (~28 BPE tokens)
MAX_TOKENS = 64  # new tokens per completion
RAY_CPUS = 2  # the local Ray's CPUs (the 2-core target machine)
REPLICA_CPUS = 1.0  # CPUs reserved per model replica = its torch threads (the bare servers use 1 thread)
SCORER_BATCH = 128  # texts per scorer batch: 32 requests of 4 texts
# How long a scorer batch waits to fill. 30 and 60 ms were tried too: no change beyond the run-to-run noise
# at concurrency 32 here (the proxy and the ingress, not the batch, bound throughput), and 5 ms keeps the
# latency at concurrency 1 low.
SCORER_WAIT_S = 0.005
GENERATOR_BATCH = 8  # generation rows decoded together: all 8 clients of the top level
# How long an idle generator replica waits before it starts decoding. With continuous batching a request
# that arrives mid-flight joins at the next step, so there is nothing to wait for (with static batches,
# 100 ms were needed here for the 8 clients' requests to land in one batch, at 200 ms of TTFT).
GENERATOR_WAIT_S = 0.0
HTTP_TIMEOUT_S = 120.0  # Serve's proxy request timeout and the client's
SCORE_GOAL = 1.5  # Serve / bare requests/s at concurrency 32, with p99 no worse
COMPLETION_GOAL = 3.0  # Serve / bare aggregate tokens/s at concurrency 8
SCORE_AT, COMPLETION_AT = 32, 8  # the levels the goals are stated at
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


class _ScoreBody(BaseModel):
    texts: list[str]


class _CompletionBody(BaseModel):
    model: str
    prompt: str
    max_tokens: int = 16
    temperature: float = 0.0
    stream: bool = True
    stream_options: dict[str, Any] | None = None


def _bare_score_app(path: str) -> Any:
    import threading

    from fastapi import FastAPI

    from seqlab.models import load_scorer

    scorer = load_scorer(path)
    params = sum(p.numel() for p in scorer.model.parameters())
    cfg = scorer.model.config
    about = f"{cfg.cell.upper()} embed {cfg.embed_dim} hidden {cfg.hidden}, {params / 1e6:.2f}M parameters"
    app = FastAPI()
    lock = threading.Lock()  # one request at a time: no batching, no overlap

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"model": about}

    @app.post("/v1/score")
    def score(body: _ScoreBody) -> dict[str, list[float]]:
        with lock:
            return {"scores": scorer.predict(body.texts)}

    return app


def _bare_completions_app(path: str) -> Any:
    import queue
    import threading

    import torch
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse
    from transformers.generation.streamers import BaseStreamer

    from seqlab.lm.generator import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(path, device="cpu")
    cfg = model.config
    about = (
        f"GPT-2 {cfg.n_layer} layers x {cfg.n_embd}, vocabulary {cfg.vocab_size}, "
        f"{model.num_parameters() / 1e6:.2f}M parameters"
    )
    jobs: queue.Queue = queue.Queue()

    class TokenQueue(BaseStreamer):
        """Hands each new token id to the request's asyncio queue (None at the end)."""

        def __init__(self, loop: asyncio.AbstractEventLoop, out: asyncio.Queue) -> None:
            self.loop, self.out, self.prompt_seen = loop, out, False

        def put(self, value: torch.Tensor) -> None:
            if not self.prompt_seen:  # generate() passes the prompt first
                self.prompt_seen = True
                return
            self.loop.call_soon_threadsafe(self.out.put_nowait, int(value.reshape(-1)[0]))

        def end(self) -> None:
            self.loop.call_soon_threadsafe(self.out.put_nowait, None)

    def decode_one_at_a_time() -> None:
        while True:
            ids, max_new, streamer = jobs.get()
            try:
                with torch.inference_mode():
                    model.generate(
                        input_ids=ids,
                        attention_mask=torch.ones_like(ids),
                        max_new_tokens=max_new,
                        do_sample=False,
                        pad_token_id=tokenizer.eos_token_id,
                        streamer=streamer,
                    )
            except Exception as exc:  # the request's stream reports it
                streamer.loop.call_soon_threadsafe(streamer.out.put_nowait, exc)

    threading.Thread(target=decode_one_at_a_time, daemon=True).start()
    app = FastAPI()

    def sse(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        data: dict[str, Any] = {"object": "text_completion", "choices": choices}
        if usage is not None:
            data["usage"] = usage
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"model": about}

    @app.post("/v1/completions")
    async def completions(body: _CompletionBody) -> StreamingResponse:
        ids = tokenizer(body.prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        out: asyncio.Queue = asyncio.Queue()
        jobs.put((ids, body.max_tokens, TokenQueue(asyncio.get_running_loop(), out)))

        async def events() -> Any:
            produced: list[int] = []
            text = sent = ""
            while (token := await out.get()) is not None:
                if isinstance(token, Exception):
                    yield f"data: {json.dumps({'error': {'message': repr(token)}})}\n\n"
                    return
                produced.append(token)
                text = tokenizer.decode(produced)
                if text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
                    continue
                piece, sent = text[len(sent) :], text
                if piece:
                    yield sse([{"index": 0, "text": piece, "finish_reason": None}])
            yield sse([{"index": 0, "text": text[len(sent) :], "finish_reason": "length"}])
            n_prompt = int(ids.shape[1])
            usage = {"prompt_tokens": n_prompt, "completion_tokens": len(produced)}
            yield sse([], {**usage, "total_tokens": n_prompt + len(produced)})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _exit_with_parent() -> None:
    """End this process once the benchmark's process is gone (killed, say), so a server never lingers."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _bare_main() -> None:
    """Subprocess entry: ``argv[1]`` is ``{"kind": "score"|"completions", "artifact", "port"}``."""
    import torch
    import uvicorn

    _exit_with_parent()
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)  # the Serve replicas get REPLICA_CPUS threads (1 by default)
    app = (_bare_score_app if spec["kind"] == "score" else _bare_completions_app)(spec["artifact"])
    uvicorn.run(app, host=HOST, port=int(spec["port"]), log_level="warning", access_log=False)


# --- the load generator (run in a subprocess: ``_load_main``) -------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100]); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def _score_once(client: Any, body: bytes) -> dict[str, float]:
    start = time.perf_counter()
    resp = await client.post("/v1/score", content=body, headers={"content-type": "application/json"})
    if resp.status_code != 200:
        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
    scores = resp.json()["scores"]
    return {"latency": time.perf_counter() - start, "items": len(scores)}


async def _completion_once(client: Any, body: bytes) -> dict[str, float]:
    start = time.perf_counter()
    ttft, tokens = None, None
    headers = {"content-type": "application/json"}
    async with client.stream("POST", "/v1/completions", content=body, headers=headers) as resp:
        if resp.status_code != 200:
            await resp.aread()
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        async for line in resp.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[len("data: ") :]
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                raise RuntimeError(f"stream error: {event['error'].get('message')}")
            if ttft is None and any(c.get("text") for c in event.get("choices") or ()):
                ttft = time.perf_counter() - start
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    if tokens is None or ttft is None:
        raise RuntimeError("the stream ended without text or without a usage event")
    return {"latency": time.perf_counter() - start, "ttft": ttft, "items": tokens}


async def _level(client: Any, once: Any, bodies: list[bytes], concurrency: int, n: int, seconds: float):
    """``concurrency`` workers send up to ``n`` requests in all, for at most ``seconds``."""
    issued, results, errors = 0, [], []
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        nonlocal issued
        while issued < n and time.perf_counter() < deadline:
            body = bodies[issued % len(bodies)]
            issued += 1
            try:
                results.append(await once(client, body))
            except Exception as exc:  # counted and reported, never fatal
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "concurrency": concurrency,
        "wall": time.perf_counter() - start,
        "latency": [r["latency"] for r in results],
        "ttft": [r["ttft"] for r in results if "ttft" in r],
        "items": sum(r["items"] for r in results),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


async def _drive(spec: dict[str, Any]) -> list[dict[str, Any]]:
    import httpx

    if urlsplit(spec["url"]).hostname != HOST:
        raise SystemExit(f"the load generator only targets {HOST}, not {spec['url']}")
    once = _score_once if spec["kind"] == "score" else _completion_once
    bodies = [json.dumps(b, ensure_ascii=False).encode() for b in spec["bodies"]]
    width = max(spec["levels"])
    limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
    async with httpx.AsyncClient(base_url=spec["url"], limits=limits, timeout=HTTP_TIMEOUT_S) as client:
        return [
            await _level(client, once, bodies, c, spec["requests"], spec["seconds"]) for c in spec["levels"]
        ]


def _load_main() -> None:
    """Subprocess entry: the load spec as JSON on stdin, each level's results as JSON on stdout."""
    spec = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(asyncio.run(_drive(spec))))


def run_load(
    url: str, kind: str, bodies: list[dict], levels: list[int], requests: int, seconds: float
) -> list[dict[str, Any]]:
    """Drive ``url`` from a fresh Python process, level after level; each level's raw results."""
    spec = {
        "url": url,
        "kind": kind,
        "bodies": bodies,
        "levels": levels,
        "requests": requests,
        "seconds": seconds,
    }
    code = "from seqlab.bench.serve import _load_main; _load_main()"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=len(levels) * (seconds + HTTP_TIMEOUT_S) + 60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


# --- servers --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen | None, timeout_s: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server behind {url} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
                return json.loads(resp.read())
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


@contextlib.contextmanager
def bare_servers(artifacts: dict[str, str], log_dir: Path) -> Iterator[dict[str, tuple[str, int, str]]]:
    """A bare FastAPI server per half (``"score"``/``"completions"`` -> artifact), each in a subprocess.

    Yields ``half -> (url, pid, model description)`` once all answer, and stops them (by PID) on exit.
    They start together, so their start-ups overlap; an idle one uses no CPU while another is loaded.
    """
    code = "from seqlab.bench.serve import _bare_main; _bare_main()"
    started: dict[str, tuple[subprocess.Popen, str, Path]] = {}
    try:
        for half, artifact in artifacts.items():
            port = free_port()
            log_path = log_dir / f"bare-{half}.log"
            spec = json.dumps({"kind": half, "artifact": artifact, "port": port})
            with open(log_path, "w", encoding="utf-8") as log_file:
                proc = subprocess.Popen([sys.executable, "-c", code, spec], stdout=log_file, stderr=log_file)
            started[half] = (proc, f"http://{HOST}:{port}", log_path)
        ready = {}
        for half, (proc, url, log_path) in started.items():
            try:
                ready[half] = (url, proc.pid, _wait_for(url, proc)["model"])
            except Exception:
                print(log_path.read_text(encoding="utf-8")[-3000:], file=sys.stderr)
                raise
        yield ready
    finally:
        for proc, _, _ in started.values():
            proc.terminate()
        for proc, _, _ in started.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _psutil() -> Any:
    """psutil: installed, or the copy Ray vendors (``import ray`` puts its thirdparty_files on sys.path)."""
    import importlib

    try:
        return importlib.import_module("psutil")
    except ImportError:
        import ray  # noqa: F401

        return importlib.import_module("psutil")


def rss_mb(pid: int) -> float:
    return _psutil().Process(pid).memory_info().rss / 2**20


SERVE_PARTS = ("ProxyActor", "Ingress", "Scorer", "Generator", "ServeController")


def ray_processes(exclude: set[int]) -> dict[int, tuple[str, Any]]:
    """``pid -> (part, psutil.Process)`` of the Ray this process started, named by Serve part.

    Parts: ``ProxyActor``, ``Ingress``, ``Scorer``/``Generator``, ``ServeController``; the rest of Ray
    (raylet, GCS, idle workers) is ``other Ray``. Only this process's descendants count (another Ray on the
    machine, a test session's, may run Serve replicas too), less ``exclude`` (the bare servers). Taken
    while no load generator runs, so none is among them.
    """
    psutil = _psutil()
    found = {}
    for proc in psutil.Process().children(recursive=True):
        if proc.pid in exclude:
            continue
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.cmdline())
            found[proc.pid] = (next((p for p in SERVE_PARTS if p in title), "other Ray"), proc)
    return found


def serve_rss_mb(procs: dict[int, tuple[str, Any]]) -> dict[str, float]:
    """RSS (MB) of the Serve proxy and replicas among ``procs``, by part (``Scorer``, ``Ingress``...)."""
    psutil = _psutil()
    found = {}
    for part, proc in procs.values():
        if part in SERVE_PARTS and part != "ServeController":
            with contextlib.suppress(psutil.Error):
                found[part] = proc.memory_info().rss / 2**20
    return found


def _cpu_seconds(proc: Any) -> float:
    times = proc.cpu_times()
    return times.user + times.system


@contextlib.contextmanager
def cpu_meter(procs: dict[int, tuple[str, Any]]) -> Iterator[dict[int, float]]:
    """CPU seconds each process of ``procs`` spends inside the block, by PID (filled in on exit)."""
    psutil = _psutil()
    before = {}
    for pid, (_, proc) in procs.items():
        with contextlib.suppress(psutil.Error):
            before[pid] = _cpu_seconds(proc)
    spent: dict[int, float] = {}
    yield spent
    for pid, (_, proc) in procs.items():
        with contextlib.suppress(psutil.Error):
            if pid in before:
                spent[pid] = _cpu_seconds(proc) - before[pid]


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
            "generator_batch": {
                "max_batch_size": args.generator_batch,
                "batch_wait_timeout_s": args.generator_wait,
                **({} if args.stream_interval is None else {"stream_interval_s": args.stream_interval}),
            },
            "log_requests": False,
        }
    )


APP_NAME = "seqlab"


@contextlib.contextmanager
def serve_instance() -> Iterator[dict[str, Any]]:
    """Serve's HTTP options (loopback, a free port); Serve is shut down on exit."""
    from ray import serve

    try:
        yield {"host": HOST, "port": free_port(), "request_timeout_s": HTTP_TIMEOUT_S}
    finally:
        serve.shutdown()


@contextlib.contextmanager
def serve_app(cfg: Any, http: dict[str, Any]) -> Iterator[str]:
    """The seqlab app on the current Ray, once it answers; deleted on exit (its CPUs are free again).

    The first call starts Serve with ``http``; later ones reuse the running controller and proxy.
    """
    from ray import serve

    from seqlab.serve.cli_serve import start_local

    try:
        yield start_local(cfg, http, name=APP_NAME)
    finally:
        serve.delete(APP_NAME)


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """A fresh local Ray of :data:`RAY_CPUS` CPUs (never a cluster), with seqlab's proxy middleware."""
    import ray

    from seqlab.ray_utils import PROXY_CALLBACK, PROXY_CALLBACK_ENV

    if ray.is_initialized():
        raise RuntimeError("seqlab bench serve starts its own Ray; run it in a process without Ray")
    os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_CALLBACK)  # the proxy seqlab serve runs
    ray.init(
        address="local",
        num_cpus=RAY_CPUS,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


# --- report ---------------------------------------------------------------------------------------------


def summarize(level: dict[str, Any]) -> dict[str, float]:
    ok = len(level["latency"])
    wall = level["wall"] or math.nan
    return {
        "concurrency": level["concurrency"],
        "ok": ok,
        "errors": level["errors"],
        "rps": ok / wall,
        "items_per_s": level["items"] / wall,
        "p50_ms": 1000 * _percentile(level["latency"], 50),
        "p99_ms": 1000 * _percentile(level["latency"], 99),
        "ttft_p50_ms": 1000 * _percentile(level["ttft"], 50),
    }


def _at(rows: list[dict[str, float]], concurrency: int) -> dict[str, float] | None:
    return next((r for r in rows if r["concurrency"] == concurrency), None)


def _compare_level(levels: list[int], goal_level: int) -> int:
    """The goal's level when it was measured, else the largest level below it (else the smallest)."""
    below = [c for c in levels if c <= goal_level]
    return max(below) if below else min(levels)


def _verdict(met: bool, errors: int, level: int, goal_level: int) -> str:
    if errors:
        return f"NOT met ({errors} failed requests)"
    note = "" if level == goal_level else f", measured at {level} instead of {goal_level}"
    return ("met" if met else "NOT met") + note


def print_cpu(results: dict[str, dict[str, Any]], unit: str) -> None:
    """Server-side CPU per unit of work over all levels, Serve's split by part."""
    parts = []
    for name in SERVERS:
        cpu = results[name]["cpu_ms"]
        split = ", ".join(f"{part} {ms:.1f}" for part, ms in sorted(cpu.items(), key=lambda kv: -kv[1]))
        parts.append(f"{name} {sum(cpu.values()):.1f} ms" + (f" ({split})" if len(cpu) > 1 else ""))
    print(f"server CPU per {unit} (all levels): " + "; ".join(parts))
    print(
        "idle background while the other server was loaded: Ray and Serve "
        f"{100 * results['bare FastAPI']['background_share']:.0f}% of a core during the bare levels, "
        f"the bare server {100 * results['seqlab Serve']['background_share']:.0f}% during the Serve levels"
    )


def print_score(results: dict[str, dict[str, Any]], levels: list[int]) -> None:
    print(f"\n/v1/score: {TEXTS_PER_REQUEST} texts of {TEXT_CHARS[0]}-{TEXT_CHARS[1]} chars per request")
    print(
        f"  {'server':14} {'conc':>5} {'ok':>5} {'err':>4} {'req/s':>9} {'texts/s':>9} {'p50 ms':>9} {'p99 ms':>9}"
    )
    for c in levels:
        for name in ("bare FastAPI", "seqlab Serve"):
            r = _at(results[name]["rows"], c)
            print(
                f"  {name:14} {c:5d} {r['ok']:5d} {r['errors']:4d} {r['rps']:9.1f} "
                f"{r['items_per_s']:9.1f} {r['p50_ms']:9.1f} {r['p99_ms']:9.1f}"
            )
    c = _compare_level(levels, SCORE_AT)
    bare, srv = _at(results["bare FastAPI"]["rows"], c), _at(results["seqlab Serve"]["rows"], c)
    ratio = srv["rps"] / bare["rps"]
    errors = bare["errors"] + srv["errors"]
    print(
        f"Serve / bare throughput at concurrency {c}: {ratio:.2f}x "
        f"(goal >= {SCORE_GOAL}x: {_verdict(ratio >= SCORE_GOAL, errors, c, SCORE_AT)})"
    )
    print(
        f"p99 at concurrency {c}: Serve {srv['p99_ms']:.1f} ms vs bare {bare['p99_ms']:.1f} ms "
        f"(goal no worse: {_verdict(srv['p99_ms'] <= bare['p99_ms'], errors, c, SCORE_AT)})"
    )
    print_cpu(results, "request")


def print_completions(results: dict[str, dict[str, Any]], levels: list[int], max_tokens: int) -> None:
    print(f"\n/v1/completions, streamed: greedy, max_tokens {max_tokens}, prompts of ~{PROMPT_CHARS} chars")
    print(
        f"  {'server':14} {'conc':>5} {'ok':>5} {'err':>4} {'tokens/s':>9} {'TTFT p50 ms':>12} "
        f"{'p50 ms':>9} {'tok/req':>8}"
    )
    for c in levels:
        for name in ("bare FastAPI", "seqlab Serve"):
            r = _at(results[name]["rows"], c)
            per_request = r["items_per_s"] / r["rps"] if r["rps"] else math.nan
            print(
                f"  {name:14} {c:5d} {r['ok']:5d} {r['errors']:4d} {r['items_per_s']:9.1f} "
                f"{r['ttft_p50_ms']:12.1f} {r['p50_ms']:9.1f} {per_request:8.1f}"
            )
    c = _compare_level(levels, COMPLETION_AT)
    bare, srv = _at(results["bare FastAPI"]["rows"], c), _at(results["seqlab Serve"]["rows"], c)
    ratio = srv["items_per_s"] / bare["items_per_s"]
    errors = bare["errors"] + srv["errors"]
    print(
        f"Serve / bare aggregate tokens/s at concurrency {c}: {ratio:.2f}x "
        f"(goal >= {COMPLETION_GOAL}x: {_verdict(ratio >= COMPLETION_GOAL, errors, c, COMPLETION_AT)})"
    )
    ttft = "; ".join(
        f"concurrency {lvl}: Serve {_at(results['seqlab Serve']['rows'], lvl)['ttft_p50_ms']:.1f} ms "
        f"vs bare {_at(results['bare FastAPI']['rows'], lvl)['ttft_p50_ms']:.1f} ms"
        for lvl in levels
    )
    print(f"TTFT p50 at {ttft}")
    print_cpu(results, "token")


def _report_errors(name: str, raw: list[dict[str, Any]]) -> None:
    for level in raw:
        if level["first_error"]:
            print(
                f"  {name} at concurrency {level['concurrency']}: {level['errors']} failed, first: "
                f"{level['first_error'][:300]}",
                file=sys.stderr,
            )


_T0 = time.monotonic()


def _progress(message: str) -> None:
    print(f"[bench serve {time.monotonic() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


# --- the benchmark --------------------------------------------------------------------------------------


ROLES = {"score": "scorer", "completions": "generator"}  # benchmark half -> the model it serves
SERVERS = ("bare FastAPI", "seqlab Serve")


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
            _report_errors(f"{name} {half}", [level])
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
    memory: dict[str, dict[str, float]] = {"bare FastAPI": {}}
    about: dict[str, str] = {}

    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="seqlab-bench-serve-") as tmp:
        root = Path(tmp)
        _progress("building the models and the request bodies")
        plans = _plan(args, root, {half: levels[half] for half in halves})
        bare_models = {half: plan["artifact"] for half, plan in plans.items()}
        with bare_servers(bare_models, root) as bare, local_ray(), serve_instance() as http:
            bare_pids = {pid for _, pid, _ in bare.values()}
            psutil = _psutil()
            for half, plan in plans.items():  # the Serve app serves one model at a time
                url, pid, about[half] = bare[half]
                cfg = serve_args(args, **{ROLES[half]: plan["artifact"]})
                with serve_app(cfg, http) as serve_url:
                    serve_procs = ray_processes(exclude=bare_pids)
                    targets = {
                        "bare FastAPI": (url, {pid: ("server", psutil.Process(pid))}),
                        "seqlab Serve": (serve_url, serve_procs),
                    }
                    results[half] = _measure(half, plan, args.seconds, targets)
                    memory["bare FastAPI"][f"{half} server"] = rss_mb(pid)
                    memory[f"Serve {ROLES[half]} app"] = serve_rss_mb(serve_procs)
        _progress("done; Serve and Ray are shut down")

    models = "; ".join(f"{ROLES[h]}: {about[h]}" for h in halves)
    print(
        f"seqlab bench serve: os.cpu_count()={os.cpu_count()}, load average {load_start[0]:.2f} "
        f"{load_start[1]:.2f} {load_start[2]:.2f} at start; {models}"
    )
    print(
        f"Serve: local Ray of {RAY_CPUS} CPUs; ingress 0 CPUs; model replica {args.replica_cpus:g} CPU(s) "
        f"= torch threads; scorer batch {args.scorer_batch} texts / wait {args.scorer_wait * 1000:g} ms; "
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
