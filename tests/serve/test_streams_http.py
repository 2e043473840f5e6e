"""Streams over real HTTP on the fast path (HAProxy in front of the ingress replica): pieces arrive as they
are decoded, not buffered to the end. (That an abandoned stream frees its row is tested on the replica,
tests/serve/test_serve_config.py: the test generator writes 110 tokens in ~0.2 s, too fast to tell an
abandoned request from a finished one over HTTP.)"""

from __future__ import annotations

import json
import time

import httpx
import pytest

pytestmark = pytest.mark.slow

PROMPT = "قرر المجلس البلدي"
LONG = 110  # new tokens: the test generator's context is 128


@pytest.fixture(scope="module")
def url(deploy):
    from ray import serve

    yield deploy("streams", scorer=None, generator_batch={"max_batch_size": 1}, limits={"max_candidates": 1})
    serve.delete("streams")


def _body(max_tokens: int, stream: bool) -> dict:
    # greedy: the same text every run (sampling may end at an early end-of-text)
    body = {"model": "seqlab-generator", "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0}
    return {**body, "stream": stream}


def _completion_seconds(url: str, max_tokens: int) -> tuple[float, int]:
    started = time.monotonic()
    resp = httpx.post(f"{url}/v1/completions", json=_body(max_tokens, False), timeout=60)
    assert resp.status_code == 200, resp.text
    return time.monotonic() - started, resp.json()["usage"]["completion_tokens"]


def test_pieces_arrive_as_they_are_decoded(url):
    _completion_seconds(url, 4)  # warm: the first request pays for connections
    arrivals, texts = [], []
    started = time.monotonic()
    with httpx.stream("POST", f"{url}/v1/completions", json=_body(LONG, True), timeout=60) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[len("data: ") :])
                if chunk["choices"] and chunk["choices"][0]["text"]:
                    arrivals.append(time.monotonic() - started)
                    texts.append(chunk["choices"][0]["text"])
    assert len(arrivals) >= 10, texts  # the test generator writes text at almost every step
    # Buffered by a proxy, every piece would arrive at the end together.
    assert arrivals[0] < 0.5 * arrivals[-1], arrivals
