"""The seqlab Serve app over real HTTP on the session's Ray: routes, streaming, the openai client, rerank,
served scores vs the library, validation, OpenAPI. One app for the whole module."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = pytest.mark.slow

PROMPT = "يستخدم الباحثون"


@pytest.fixture(scope="module")
def url(deploy):
    from ray import serve

    yield deploy("app")
    serve.delete("app")


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def sse_events(response: httpx.Response) -> list:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_score_round_trip_equals_the_library(client, artifacts, sentences):
    from seqlab.models import load_scorer

    texts = [*sentences[:4], "مدرسةٌ جديدة للبرمجة", "🙂 ok", ""]  # raw: diacritics, teh marbuta; no Arabic
    resp = client.post("/v1/score", json={"texts": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    scorer = load_scorer(str(artifacts["scorer"]))
    assert body["scores"] == pytest.approx(scorer.predict(texts), abs=1e-5)
    assert len(set(round(s, 3) for s in body["scores"])) > 2
    assert body["no_arabic"] == scorer.no_arabic(texts) == [False] * 5 + [True, True]
    assert body["model"]["role"] == "scorer" and body["model"]["artifact"] == str(artifacts["scorer"])
    assert resp.headers["x-request-id"]


def test_concurrent_score_requests_each_get_their_own_scores(
    url, artifacts, sentences, check_concurrent_scores
):
    check_concurrent_scores(url, artifacts["scorer"], sentences)


def test_generate_greedy_matches_the_library(client, artifacts):
    from seqlab.lm.config import DecodingConfig
    from seqlab.lm.generator import load_generator

    resp = client.post(
        "/v1/generate",
        json={"prompt": PROMPT, "strategy": "greedy", "max_new_tokens": 12, "repetition_penalty": 1.0},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    gen = load_generator(artifacts["generator"], device="cpu")
    alone = gen.generate(
        PROMPT, DecodingConfig(strategy="greedy", max_new_tokens=12, repetition_penalty=1.0)
    )[0]
    assert [c["text"] for c in body["candidates"]] == [alone.text]
    assert (
        body["candidates"][0]["finish_reason"] in ("stop", "length")
        and body["candidates"][0]["score"] is None
    )
    assert body["usage"]["prompt_tokens"] > 0
    assert (
        body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )


def test_generate_rerank_orders_candidates_by_score(client):
    resp = client.post(
        "/v1/generate",
        json={
            "prompt": PROMPT,
            "num_candidates": 4,
            "seed": 3,
            "max_new_tokens": 10,
            "rerank": True,
            "temperature": 1.5,
        },
    )
    assert resp.status_code == 200, resp.text
    cands = resp.json()["candidates"]
    assert len(cands) == 4
    scores = [c["score"] for c in cands]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)
    texts = [c["text"] for c in cands]
    again = client.post("/v1/score", json={"texts": texts}).json()["scores"]
    assert again == pytest.approx(scores, abs=1e-5)
    assert len(set(texts)) > 1


def test_generate_stream_equals_the_non_streamed_text(client):
    payload = {"prompt": PROMPT, "strategy": "greedy", "max_new_tokens": 16}
    plain = client.post("/v1/generate", json=payload).json()["candidates"][0]["text"]
    with client.stream("POST", "/v1/generate", json={**payload, "stream": True}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
    assert events[-1] == "[DONE]"
    pieces = [e["text"] for e in events[:-1] if "text" in e and "done" not in e]
    assert len(pieces) > 1 and "".join(pieces) == plain
    final = events[-2]
    assert final["done"] is True and final["candidates"][0]["text"] == plain


def test_openai_client_plain_and_streamed(url):
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    models = client.models.list()
    assert {m.id for m in models.data} == {"seqlab-scorer", "seqlab-generator"}
    plain = client.completions.create(model="seqlab-generator", prompt=PROMPT, max_tokens=14, temperature=0)
    assert plain.object == "text_completion" and plain.id.startswith("cmpl-")
    assert plain.choices[0].finish_reason in ("stop", "length") and plain.usage.completion_tokens > 0
    streamed = client.completions.create(
        model="seqlab-generator", prompt=PROMPT, max_tokens=14, temperature=0, stream=True
    )
    text = "".join(chunk.choices[0].text for chunk in streamed if chunk.choices)
    assert text == plain.choices[0].text
    many = client.completions.create(
        model="seqlab-generator",
        prompt=[PROMPT, "هطل المطر"],
        max_tokens=6,
        n=2,
        seed=1,
        extra_body={"top_k": 20, "repetition_penalty": 1.1},
    )
    assert sorted(c.index for c in many.choices) == [0, 1, 2, 3]
    usage = client.completions.create(
        model="seqlab-generator",
        prompt=PROMPT,
        max_tokens=14,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(usage)
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage


def test_openai_client_errors(url):
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.completions.create(model="gpt-4", prompt=PROMPT, max_tokens=4)
    with pytest.raises(openai.UnprocessableEntityError, match="max_tokens"):
        client.completions.create(model="seqlab-generator", prompt=PROMPT, max_tokens=100_000)


def test_stop_sequences(client):
    payload = {"model": "seqlab-generator", "prompt": PROMPT, "max_tokens": 20, "temperature": 0}
    full = client.post("/v1/completions", json=payload).json()["choices"][0]["text"]
    stop = full[4:6]
    cut = client.post("/v1/completions", json={**payload, "stop": [stop]}).json()["choices"][0]
    assert cut["text"] == full[: full.find(stop)] and cut["finish_reason"] == "stop"


def test_models_carry_metadata(client, artifacts):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    scorer, generator = by_id["seqlab-scorer"]["seqlab"], by_id["seqlab-generator"]["seqlab"]
    assert scorer["role"] == "scorer" and scorer["metrics"]["test_rmse"] == 1.5
    assert scorer["normalize"]["teh_marbuta"] is True and scorer["architecture"] == "GRU"
    assert generator["role"] == "generator" and generator["metrics"]["test_perplexity"] == 123.0
    assert generator["artifact"] == str(artifacts["generator"]) and generator["context_length"] == 128
    assert client.get("/healthz").json() == {"status": "ok", "scorer": True, "generator": True}


BAD_REQUESTS = [
    ("/v1/score", {"texts": []}, 422, "texts"),
    ("/v1/score", {"texts": "one string"}, 422, "texts"),
    ("/v1/score", {"texts": [1, 2]}, 422, "texts"),
    ("/v1/score", {"texts": ["ok", None]}, 422, "texts"),
    ("/v1/score", {"text": ["typo"]}, 422, "text"),
    ("/v1/score", {"texts": ["a\u0000b"]}, 422, "NUL"),
    ("/v1/score", {"texts": ["x"] * 65}, 413, "texts"),
    ("/v1/score", {"texts": ["ب" * 20_001]}, 413, "texts[0]"),
    ("/v1/generate", {"prompt": PROMPT, "temperature": -1}, 422, "temperature"),
    ("/v1/generate", {"prompt": PROMPT, "top_p": 0}, 422, "top_p"),
    ("/v1/generate", {"prompt": PROMPT, "top_k": -3}, 422, "top_k"),
    ("/v1/generate", {"prompt": PROMPT, "strategy": "beam"}, 422, "strategy"),
    ("/v1/generate", {"prompt": PROMPT, "max_new_tokens": 0}, 422, "max_new_tokens"),
    ("/v1/generate", {"prompt": PROMPT, "max_new_tokens": 257}, 422, "max_new_tokens"),
    ("/v1/generate", {"prompt": PROMPT, "num_candidates": 9}, 422, "num_candidates"),
    ("/v1/generate", {"prompt": PROMPT, "seed": -1}, 422, "seed"),
    ("/v1/generate", {"prompt": PROMPT, "repetition_penalty": "high"}, 422, "repetition_penalty"),
    ("/v1/generate", {}, 422, "prompt"),
    ("/v1/generate", {"prompt": ["list"]}, 422, "prompt"),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": PROMPT, "n": 0}, 422, "n"),
    (
        "/v1/completions",
        {"model": "seqlab-generator", "prompt": PROMPT, "temperature": 3},
        422,
        "temperature",
    ),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": []}, 422, "prompt"),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": PROMPT, "logprobs": 21}, 422, "logprobs"),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": PROMPT, "suffix": "x"}, 400, "suffix"),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": PROMPT, "max_tokens": 0}, 422, "echo"),
    (
        "/v1/completions",
        {"model": "seqlab-generator", "prompt": PROMPT, "logprobs": 1, "stream": True},
        400,
        "logprobs",
    ),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": [5, 10**6], "max_tokens": 2}, 422, "token"),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": [[5, -1]]}, 422, "prompt"),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": [[]]}, 422, "prompt"),
    ("/tokenize", {"prompt": PROMPT, "model": "nope"}, 404, "model"),
    ("/detokenize", {"tokens": [10**6]}, 422, "token"),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": PROMPT, "stop": ["a"] * 5}, 422, "stop"),
    ("/v1/completions", {"model": "seqlab-generator", "prompt": PROMPT, "best_of": 2}, 400, "best_of"),
    ("/v1/completions", {"model": "nope", "prompt": PROMPT}, 404, "model"),
    ("/v1/completions", {"model": "seqlab-scorer", "prompt": PROMPT}, 400, "scorer"),
    ("/v1/completions", {"prompt": PROMPT}, 422, "model"),
]


@pytest.mark.parametrize(("route", "payload", "status", "names"), BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx(client, route, payload, status, names):
    resp = client.post(route, json=payload)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert names in error["message"] and error["code"] == status and error["type"]


@pytest.mark.parametrize(
    ("content", "status", "names"),
    [
        (b'{"texts": ["a"', 400, "JSON"),
        (b"[1, 2]", 400, "object"),
        (b"", 400, "empty"),
        (b"\xff\xfe", 400, "JSON"),
        (b'{"texts": ["\\ud800"]}', 422, "surrogate"),
    ],
)
def test_malformed_bodies(client, content, status, names):
    resp = client.post("/v1/score", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert names in resp.json()["error"]["message"]


def test_oversized_body_and_unknown_route(client):
    resp = client.post(
        "/v1/score",
        content=b'{"texts": ["' + b"a" * 1_100_000 + b'"]}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 413 and "limit" in resp.json()["error"]["message"]
    resp = client.get("/v1/nothing")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == 404
    assert client.get("/v1/score").status_code == 405


def test_openapi_declares_every_route_and_status(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/score", "/v1/generate", "/v1/completions", "/v1/models", "/healthz"} <= set(spec["paths"])
    for route in ("/v1/score", "/v1/generate", "/v1/completions"):
        declared = set(spec["paths"][route]["post"]["responses"])
        assert {"200", "400", "401", "404", "408", "413", "422", "429", "500", "503"} <= declared, route
    gen_schema = spec["components"]["schemas"]["GenerateRequest"]["properties"]
    assert {
        "strategy",
        "temperature",
        "top_k",
        "top_p",
        "repetition_penalty",
        "seed",
        "rerank",
        "stream",
    } <= set(gen_schema)
    assert client.get("/docs").status_code == 200


def test_prompt_longer_than_the_context_is_truncated_and_said(client, sentences):
    long_prompt = " ".join(sentences * 8)
    resp = client.post(
        "/v1/generate", json={"prompt": long_prompt, "max_new_tokens": 8, "strategy": "greedy"}
    )
    assert resp.status_code == 200 and resp.json()["prompt_truncated"] is True
    assert resp.json()["usage"]["prompt_tokens"] <= 128 - 8


# --- the completions API evaluation tools use: logprobs, echo, token-id prompts ---------------------------


def local_logprobs(artifacts, ids: list[int]) -> list[float]:
    """log p(ids[t] | ids[:t]) for t >= 1 from the generator artifact loaded here, outside Serve."""
    import torch

    from seqlab.lm.generator import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(str(artifacts["generator"]), device="cpu")
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
    return [logp[t - 1, ids[t]].item() for t in range(1, len(ids))]


def test_lm_eval_loglikelihood_request_gets_exact_lengths_and_the_models_numbers(client, artifacts):
    ids = client.post("/tokenize", json={"prompt": PROMPT + " الجديدة"}).json()["tokens"]
    body = {"model": "seqlab-generator", "prompt": [ids], "max_tokens": 1, "echo": True, "logprobs": 1}
    resp = client.post("/v1/completions", json={**body, "temperature": 0, "seed": 1234})
    assert resp.status_code == 200, resp.text
    [choice] = resp.json()["choices"]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(ids) + 1
    assert len(lp["text_offset"]) == len(ids) + 1 and lp["token_logprobs"][0] is None
    # lm-eval sums the prompt's part (the continuation's tokens of the context, here all but the first)
    assert lp["token_logprobs"][1 : len(ids)] == pytest.approx(local_logprobs(artifacts, ids), abs=1e-4)
    assert (
        resp.json()["usage"]["prompt_tokens"] == len(ids) and resp.json()["usage"]["completion_tokens"] == 1
    )
    # max_tokens 0 with echo: the prompt alone, the same numbers
    zero = client.post("/v1/completions", json={**body, "max_tokens": 0}).json()["choices"][0]["logprobs"]
    assert zero["token_logprobs"] == lp["token_logprobs"][:-1]


def test_token_id_prompts_and_echo_without_logprobs(client):
    ids = client.post("/tokenize", json={"prompt": PROMPT}).json()["tokens"]
    text = client.post("/detokenize", json={"tokens": ids}).json()["prompt"]
    assert text == PROMPT
    body = {"model": "seqlab-generator", "max_tokens": 4, "temperature": 0, "echo": True}
    by_ids = client.post("/v1/completions", json={**body, "prompt": [ids, ids]}).json()
    by_text = client.post("/v1/completions", json={**body, "prompt": PROMPT}).json()
    assert [c["text"] for c in by_ids["choices"]] == [by_text["choices"][0]["text"]] * 2
    assert by_text["choices"][0]["text"].startswith(PROMPT) and by_text["choices"][0]["logprobs"] is None


def test_openai_client_reads_logprobs_unchanged(url):
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    done = client.completions.create(
        model="seqlab-generator", prompt=PROMPT, max_tokens=3, logprobs=2, echo=True, temperature=0
    )
    lp = done.choices[0].logprobs
    assert lp.token_logprobs[0] is None and len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset)
    assert all(isinstance(alt, dict) and len(alt) >= 2 for alt in lp.top_logprobs[1:])
    assert done.usage.completion_tokens <= 3


def test_readiness_tokenize_and_metrics(client):
    assert client.get("/readyz").json() == {"status": "ready", "scorer": True, "generator": True}
    tok = client.post("/tokenize", json={"prompt": PROMPT, "model": "seqlab-generator"}).json()
    assert tok["count"] == len(tok["tokens"]) > 0 and tok["max_model_len"] == 128
    assert len(tok["token_strs"]) == tok["count"]
    before = client.get("/metrics").text
    done = client.post(
        "/v1/completions", json={"model": "seqlab-generator", "prompt": PROMPT, "max_tokens": 2}
    )
    usage = done.json()["usage"]  # sampled: it may end early at end-of-text
    client.post("/v1/score", json={"texts": []})
    text = client.get("/metrics").text
    assert 'seqlab_requests_total{route="/v1/completions",status="200"}' in text
    assert 'seqlab_requests_total{route="/v1/score",status="422"}' in text
    assert 'seqlab_request_seconds_bucket{route="/v1/completions",le="+Inf"}' in text
    assert "seqlab_generator_waiting 0" in text and "seqlab_generator_running_rows" in text

    def tokens(metrics_text: str, direction: str) -> int:
        line = next(
            x
            for x in metrics_text.splitlines()
            if x.startswith(f'seqlab_tokens_total{{direction="{direction}"}}')
        )
        return int(line.split()[-1])

    assert tokens(text, "completion") - tokens(before, "completion") == usage["completion_tokens"]
    assert tokens(text, "prompt") - tokens(before, "prompt") == usage["prompt_tokens"] > 0


@pytest.mark.parametrize(
    "route, extra",
    [
        ("/v1/generate", {"temperature": 1e-40}),
        ("/v1/generate", {"top_p": 5e-324}),
        ("/v1/generate", {"repetition_penalty": 5e-324}),
        ("/v1/completions", {"temperature": 5e-324}),
    ],
)
def test_tiny_decoding_values_the_schema_accepts_decode(client, route, extra):
    body = {"prompt": PROMPT, "max_new_tokens": 3, "strategy": "sample", **extra}
    if route == "/v1/completions":
        body = {"model": "seqlab-generator", "prompt": PROMPT, "max_tokens": 3, **extra}
    resp = client.post(route, json=body)
    assert resp.status_code == 200, resp.text
