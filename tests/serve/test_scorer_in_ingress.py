"""``scorer_placement: ingress``: the ingress replica scores in its own process (no scorer deployment), with
the same answers, batching, readiness and limits as the scorer deployment gives."""

from __future__ import annotations

import httpx
import pytest

from seqlab.serve.config import ServeArgs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def url(deploy):
    from ray import serve

    yield deploy("inplace", generator=None, scorer_placement="ingress")
    serve.delete("inplace")


def test_no_scorer_deployment_and_the_same_scores_batched(url, artifacts, sentences, check_concurrent_scores):
    from ray import serve

    from seqlab.models import load_scorer

    deployments = serve.status().applications["inplace"].deployments
    assert set(deployments) == {"Ingress"}  # the scorer lives in the ingress replica
    assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200
    check_concurrent_scores(url, artifacts["scorer"], sentences)
    scorer = load_scorer(str(artifacts["scorer"]))
    resp = httpx.post(
        f"{url}/v1/score", json={"texts": [sentences[0]], "return_normalized": True}, timeout=60
    )
    assert resp.json()["normalized"] == [scorer.prepare(sentences[0])]
    models = httpx.get(f"{url}/v1/models", timeout=30).json()["data"]
    assert [m["id"] for m in models] == ["seqlab-scorer"]
    too_many = httpx.post(f"{url}/v1/score", json={"texts": ["x"] * 1000}, timeout=60)
    assert too_many.status_code == 413


def test_the_ingress_reserves_the_scorer_cpus():
    args = ServeArgs(scorer="s", scorer_placement="ingress")
    apart = ServeArgs(scorer="s")
    assert args.cpus_needed() == {"ingress": apart.cpus_needed()["ingress"] + apart.cpus_needed()["scorer"]}
