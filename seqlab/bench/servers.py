"""The servers ``seqlab bench serve`` compares, each in a process of its own, and their meters.

* bare FastAPI + uvicorn servers (:func:`bare_servers`): one request at a time, 1 torch thread;
* the seqlab Serve app (:func:`serve_servers`), once per serving path: each in a subprocess that starts its
  own local Ray (:func:`seqlab.ray_utils.init_ray`), so Ray's default Python proxy and the fast path
  (:mod:`seqlab.serve.fastpath`, HAProxy + direct ingress; Serve reads that choice when its processes
  start) run side by side in one benchmark run;
* process meters: CPU seconds and RSS by part (HAProxy, proxy, ingress, model replicas, the rest of Ray).

Every server binds :data:`HOST` only, and ends when the benchmark's process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

HOST = "127.0.0.1"  # the only address the benchmark binds or targets
RAY_CPUS = 2  # each Serve server's local Ray (the 2-core target machine), more if its replicas need it
HTTP_TIMEOUT_S = 120.0  # Serve's request timeout and the client's
APP_NAME = "seqlab"
# serving path -> True for the fast path (HAProxy + direct ingress), False for Ray's default proxy
PATHS = {"Serve default": False, "Serve fast path": True}


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
    code = "from seqlab.bench.servers import _bare_main; _bare_main()"
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


def psutil_module() -> Any:
    """psutil: installed, or the copy Ray vendors (``import ray`` puts its thirdparty_files on sys.path)."""
    import importlib

    try:
        return importlib.import_module("psutil")
    except ImportError:
        import ray  # noqa: F401

        return importlib.import_module("psutil")


def rss_mb(pid: int) -> float:
    return psutil_module().Process(pid).memory_info().rss / 2**20


# Serve's processes by a word of their command line, first match wins; the rest of Ray is "other Ray".
SERVE_PARTS = (
    ("HAProxyManager", "HAProxyManager"),
    ("haproxy", "HAProxy"),
    ("ProxyActor", "ProxyActor"),
    ("Ingress", "Ingress"),
    ("Scorer", "Scorer"),
    ("Generator", "Generator"),
    ("ServeController", "ServeController"),
)
SERVING_PARTS = ("HAProxy", "ProxyActor", "Ingress", "Scorer", "Generator")  # the parts whose RSS is reported


def processes_under(root: int) -> dict[int, tuple[str, Any]]:
    """``pid -> (part, psutil.Process)`` of process ``root`` and its descendants, named by Serve part.

    ``root`` is a Serve server of :func:`serve_servers` (the driver of its own local Ray, so every Ray
    process of that Ray descends from it; another Ray on the machine does not). Its own part is
    ``driver``. Taken while no load runs, after the app is ready.
    """
    psutil = psutil_module()
    top = psutil.Process(root)
    found = {root: ("driver", top)}
    for proc in top.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.cmdline())
            found[proc.pid] = (next((part for word, part in SERVE_PARTS if word in title), "other Ray"), proc)
    return found


def serve_rss_mb(procs: dict[int, tuple[str, Any]]) -> dict[str, float]:
    """RSS (MB) of the Serve proxy and replicas among ``procs``, by part (``Scorer``, ``Ingress``...)."""
    psutil = psutil_module()
    found = {}
    for part, proc in procs.values():
        if part in SERVING_PARTS:
            with contextlib.suppress(psutil.Error):
                found[part] = proc.memory_info().rss / 2**20
    return found


def _cpu_seconds(proc: Any) -> float:
    times = proc.cpu_times()
    return times.user + times.system


@contextlib.contextmanager
def cpu_meter(procs: dict[int, tuple[str, Any]]) -> Iterator[dict[int, float]]:
    """CPU seconds each process of ``procs`` spends inside the block, by PID (filled in on exit)."""
    psutil = psutil_module()
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


def _serve_main() -> None:
    """Subprocess entry: ``argv[1]`` is ``{"fast": bool, "args": ServeArgs fields, "port", "ready": path}``.

    Starts a local Ray on the path asked for, the app on it, writes the URL to ``ready``, and serves until
    SIGTERM (or the benchmark's process is gone); then shuts Serve and Ray down.
    """
    _exit_with_parent()
    spec = json.loads(sys.argv[1])
    from seqlab.serve import fastpath

    os.environ[fastpath.OPT_OUT_ENV] = "1" if spec["fast"] else "0"
    os.environ.pop("RAY_ADDRESS", None)  # a new local Ray, never a cluster
    import ray
    from ray import serve

    from seqlab.ray_utils import init_ray
    from seqlab.serve.cli_serve import start_local
    from seqlab.serve.config import ServeArgs

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    cfg = ServeArgs.model_validate(spec["args"])
    cpus = max(RAY_CPUS, int(sum(cfg.cpus_needed().values()) + 0.999))
    init_ray(num_cpus=cpus, log_to_driver=False, configure_logging=False)
    try:
        http = {"host": HOST, "port": int(spec["port"]), "request_timeout_s": HTTP_TIMEOUT_S}
        url = start_local(cfg, http, name=APP_NAME, log_level="WARNING")
        Path(spec["ready"]).write_text(url, encoding="utf-8")
        while not stop["now"]:
            time.sleep(0.2)
    finally:
        serve.shutdown()
        ray.shutdown()


@contextlib.contextmanager
def serve_servers(
    cfg: Any, log_dir: Path, paths: dict[str, bool] = PATHS
) -> Iterator[dict[str, tuple[str, int]]]:
    """The Serve app of ``cfg`` (ServeArgs) once per serving path (``name -> fast?``), side by side.

    Yields ``name -> (url, pid)`` once every app is ready; stops them (SIGTERM, then the process group)
    on exit. They start one after another: two Ray start-ups at once on two cores time out.
    """
    code = "from seqlab.bench.servers import _serve_main; _serve_main()"
    started: dict[str, subprocess.Popen] = {}
    ready: dict[str, tuple[str, int]] = {}
    try:
        for name, fast in paths.items():
            tag = name.lower().replace(" ", "-")
            flag, log_path = log_dir / f"{tag}.ready", log_dir / f"{tag}.log"
            spec = {
                "fast": fast,
                "args": cfg.model_dump(mode="json"),
                "port": free_port(),
                "ready": str(flag),
            }
            with open(log_path, "w", encoding="utf-8") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-c", code, json.dumps(spec)],
                    stdout=log_file,
                    stderr=log_file,
                    start_new_session=True,
                )
            started[name] = proc
            deadline = time.monotonic() + 300
            while not flag.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    print(log_path.read_text(encoding="utf-8")[-3000:], file=sys.stderr)
                    raise RuntimeError(f"{name}: the Serve app did not start (log: {log_path})")
                time.sleep(0.3)
            ready[name] = (flag.read_text(encoding="utf-8"), proc.pid)
        yield ready
    finally:
        for proc in started.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in started.values():
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of its Ray is left
            proc.wait()
