"""The load generator of ``seqlab bench serve``: one process per level, so the client never shares an
interpreter with a server. ``run_load(url, half, bodies, levels, n, seconds)`` runs it and returns, per
concurrency level, each request's latency (and time to first token for streamed completions), the items
served (texts or tokens), the errors and the level's wall time. Only ``HOST`` is ever targeted.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from seqlab.bench.servers import HOST, HTTP_TIMEOUT_S

__all__ = ["percentile", "run_load"]


def percentile(values: list[float], q: float) -> float:
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
    code = "from seqlab.bench.load import _load_main; _load_main()"
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
