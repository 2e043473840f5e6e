"""Safety of the Serve app under real HTTP: auth, a missing model, overload with Retry-After, the app's
deadline, the client's timeout override dropped at the proxy, and a killed replica being replaced."""

import asyncio
import json
import time

import httpx
import pytest
from fastapi import FastAPI, Request
from ray import serve

pytestmark = pytest.mark.slow

echo = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0})
@serve.ingress(echo)
class Echo:
    """Answers with the request headers it received (to see what the proxy passed on).

    (No ``from __future__ import annotations`` in this file: the class is pickled into the replica and
    FastAPI must see ``Request`` itself, not a string.)
    """

    @echo.get("/")
    def headers(self, request: Request) -> dict:
        return dict(request.headers)


KEY = "test-key-5f2c"
PROMPT = "يستخدم الباحثون"


@pytest.fixture(scope="module")
def apps(deploy):
    """Three small apps for this module, deleted at its end."""
    import os

    from ray import serve

    os.environ["SEQLAB_API_KEY"] = KEY  # build_app carries it to the ingress replica
    try:
        secure = deploy("secure", generator=None)
    finally:
        del os.environ["SEQLAB_API_KEY"]
    tight = deploy(
        "tight",
        ingress={"max_ongoing_requests": 2, "max_queued_requests": 2},
        generator_deployment={"max_ongoing_requests": 1, "max_queued_requests": 1},
        generator_batch={"max_batch_size": 8, "batch_wait_timeout_s": 0.0},
        overload_status=429,
        retry_after_s=2,
    )
    slow = deploy(
        "slow", scorer=None, limits={"request_timeout_s": 0.1}, generator_batch={"max_batch_size": 8}
    )
    yield {"secure": secure, "tight": tight, "slow": slow}
    for name in ("secure", "tight", "slow"):
        serve.delete(name)


def test_auth_required_everywhere_but_healthz(apps):
    url = apps["secure"]
    body = {"texts": ["نص للتجربة"]}
    assert httpx.get(f"{url}/healthz").status_code == 200
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": KEY},
        {"Authorization": "Basic abc"},
    ):
        resp = httpx.post(f"{url}/v1/score", json=body, headers=headers)
        assert resp.status_code == 401, headers
        assert resp.json()["error"]["type"] == "authentication_error"
        assert resp.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/openapi.json").status_code == 401
    ok = httpx.post(f"{url}/v1/score", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200 and len(ok.json()["scores"]) == 1


def test_openai_client_sends_the_key(apps):
    import openai

    good = openai.OpenAI(base_url=f"{apps['secure']}/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in good.models.list().data] == ["seqlab-scorer"]
    bad = openai.OpenAI(base_url=f"{apps['secure']}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_max_tokens_past_the_context_is_named(apps):
    resp = httpx.post(f"{apps['slow']}/v1/generate", json={"prompt": PROMPT, "max_new_tokens": 200})
    assert resp.status_code == 422 and "context of 128" in resp.json()["error"]["message"]
    assert resp.json()["error"]["param"] == "max_new_tokens"


def test_a_missing_model_is_named(apps):
    headers = {"Authorization": f"Bearer {KEY}"}
    resp = httpx.post(f"{apps['secure']}/v1/generate", json={"prompt": PROMPT}, headers=headers)
    assert resp.status_code == 404 and "no generator" in resp.json()["error"]["message"]
    resp = httpx.post(f"{apps['slow']}/v1/score", json={"texts": ["x"]})
    assert resp.status_code == 404 and "no scorer" in resp.json()["error"]["message"]
    resp = httpx.post(f"{apps['slow']}/v1/generate", json={"prompt": PROMPT, "rerank": True})
    assert resp.status_code == 404 and "scorer" in resp.json()["error"]["message"]
    assert httpx.get(f"{apps['secure']}/healthz").json() == {
        "status": "ok",
        "scorer": True,
        "generator": False,
    }


def test_overload_answers_429_with_retry_after(apps):
    url = apps["tight"]
    payload = {"prompt": PROMPT, "strategy": "greedy", "max_new_tokens": 120}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{url}/v1/generate", json=payload) for _ in range(24)))

    responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1, statuses
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
    # nothing is wedged: the app answers normally once the burst is over
    assert httpx.post(f"{url}/v1/generate", json=payload, timeout=60).status_code == 200


def test_the_app_deadline_answers_408(apps):
    url = apps["slow"]
    payload = {"prompt": PROMPT, "max_new_tokens": 120, "num_candidates": 8, "temperature": 1.0}  # ~0.3 s
    resp = httpx.post(f"{url}/v1/generate", json=payload, timeout=60)
    assert resp.status_code == 408, resp.text
    assert "did not finish" in resp.json()["error"]["message"]
    # a client cannot switch the deadline off
    resp = httpx.post(
        f"{url}/v1/generate", json=payload, headers={"x-request-timeout-seconds": "0"}, timeout=60
    )
    assert resp.status_code == 408


def test_a_stream_past_the_deadline_ends_with_an_error_event(apps):
    url = apps["slow"]
    payload = {"model": "seqlab-generator", "prompt": PROMPT, "max_tokens": 120, "n": 8, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=payload, timeout=60) as resp:
        if resp.status_code == 408:  # the deadline passed before the stream started: a plain 408
            return
        assert resp.status_code == 200
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == 408


def test_the_proxy_drops_the_client_timeout_header(serve_instance):
    """Serve's proxy would let `x-request-timeout-seconds: 0` disable the request timeout; seqlab's edge
    middleware removes the header before the proxy (and any deployment) sees it."""
    from ray import serve

    serve.run(Echo.bind(), name="echo", route_prefix="/echo")
    try:
        seen = httpx.get(
            f"{serve_instance}/echo/", headers={"x-request-timeout-seconds": "0", "x-kept": "1"}
        ).json()
        assert seen.get("x-kept") == "1" and "x-request-timeout-seconds" not in seen
    finally:
        serve.delete("echo")


def test_a_killed_replica_is_replaced_and_the_app_answers_again(apps):
    import ray

    url = apps["tight"]
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if "SERVE_REPLICA" in a["name"] and "tight" in a["name"] and "Scorer" in a["name"]
    ]
    assert len(names) == 1, names
    victim = ray.get_actor(names[0], namespace="serve")
    body = {"texts": ["تعمل الشركة على تطوير خوارزمية جديدة"]}
    statuses, killed_at = [], None
    deadline = time.monotonic() + 90
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < deadline:
            statuses.append(client.post(f"{url}/v1/score", json=body).status_code)
            if len(statuses) == 5:
                ray.kill(victim, no_restart=True)
                killed_at = len(statuses)
            if killed_at and len(statuses) > killed_at + 3 and statuses[-1] == 200:
                break
            time.sleep(0.05)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-1] == 200, statuses
    alive = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if "SERVE_REPLICA" in a["name"] and "tight" in a["name"] and "Scorer" in a["name"]
    ]
    assert alive and alive != names, "Serve did not start a new scorer replica"
