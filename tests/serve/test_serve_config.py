"""serve/config.yaml and the builder's args: Serve's own schema accepts the file, seqlab's part is strict."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from seqlab.config import ConfigError
from seqlab.serve.config import ServeArgs

CONFIG = Path(__file__).resolve().parents[2] / "serve" / "config.yaml"


def load() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_shipped_serve_config_parses_with_serve_and_seqlab():
    from ray.serve.schema import ServeDeploySchema

    from seqlab.serve.cli_serve import read_serve_config

    data = load()
    schema = ServeDeploySchema.model_validate(data)
    assert schema.applications[0].import_path == "seqlab.serve.app:build_app"
    http, args = read_serve_config(CONFIG)
    assert http["host"] == "127.0.0.1"  # loopback unless configured otherwise
    cfg = ServeArgs.model_validate(args)
    assert cfg.limits.request_timeout_s < http["request_timeout_s"]
    assert CONFIG.read_text(encoding="utf-8").startswith("# serve run serve/config.yaml")


def test_a_typo_in_the_args_is_rejected_by_serve_and_by_seqlab(tmp_path):
    from pydantic import ValidationError
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    from seqlab.serve.app import build_app, load_args
    from seqlab.serve.cli_serve import read_serve_config

    data = load()
    args = copy.deepcopy(data["applications"][0]["args"])
    args["scorer_deployment"]["max_ongoing_request"] = 10  # the typo Serve itself would ignore
    with pytest.raises(ValidationError, match="max_ongoing_request"):
        call_user_app_builder_with_args_if_necessary(build_app, args)  # what `serve run` does
    with pytest.raises(ConfigError, match=r"scorer_deployment\.max_ongoing_request"):
        load_args(args)
    data["applications"][0]["args"] = args
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    _, file_args = read_serve_config(bad)
    with pytest.raises(ConfigError, match="max_ongoing_request"):
        load_args(file_args)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"http_options": {"hots": "0.0.0.0"}}, "hots"),
        ({"applications": [{"name": "x", "import_path": "other:app"}]}, "no application"),
        ({"applications": "nope"}, "applications"),
    ],
)
def test_bad_serve_files_name_the_problem(tmp_path, change, message):
    from seqlab.serve.cli_serve import read_serve_config

    data = {**load(), **change}
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        read_serve_config(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "at least one of scorer or generator"),
        ({"scorer": "s", "limits": {"max_texts": 100}}, "max_batch_size"),
        ({"scorer": "s", "scorer_deployment": {"num_gpus": -1}}, "num_gpus"),
        ({"scorer": "s", "overload_status": 500}, "overload_status"),
        (
            {"scorer": "s", "generator_deployment": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}},
            "max_replicas",
        ),
        ({"scorer": "s", "device": "tpu"}, "device"),
    ],
)
def test_serve_args_validation_names_the_field(args, message):
    from seqlab.serve.app import load_args

    with pytest.raises(ConfigError, match=message):
        load_args(args)


def test_deployment_options_map_to_serve_options():
    cfg = ServeArgs.model_validate(
        {
            "scorer": "s",
            "scorer_deployment": {
                "num_replicas": 3,
                "num_gpus": 0.25,
                "max_queued_requests": 7,
                "max_replicas_per_node": 1,
                "resources": {"scorer_node": 0.5},
            },
            "generator_deployment": {"autoscaling": {"min_replicas": 1, "max_replicas": 4}},
        }
    )
    scorer = cfg.scorer_deployment.serve_options()
    assert scorer["num_replicas"] == 3 and scorer["ray_actor_options"]["num_gpus"] == 0.25
    assert scorer["max_queued_requests"] == 7
    assert scorer["max_replicas_per_node"] == 1 and scorer["ray_actor_options"]["resources"] == {
        "scorer_node": 0.5
    }
    generator = cfg.generator_deployment.serve_options()
    assert "num_replicas" not in generator and generator["autoscaling_config"]["max_replicas"] == 4
    assert "max_replicas_per_node" not in generator and "resources" not in generator["ray_actor_options"]


@pytest.mark.gpu
def test_fractional_gpu_replicas_decode_on_cuda(deploy):
    """On a GPU machine: two scorer replicas share one GPU (0.5 each) and the models run on CUDA."""
    import httpx
    from ray import serve

    url = deploy(
        "gpu",
        device="auto",
        scorer_deployment={"num_replicas": 2, "num_gpus": 0.5},
        generator_deployment={"num_gpus": 0.5},
    )
    try:
        cards = {m["id"]: m["seqlab"] for m in httpx.get(f"{url}/v1/models").json()["data"]}
        assert cards["seqlab-scorer"]["device"] == "cuda" and cards["seqlab-generator"]["device"] == "cuda"
        assert httpx.post(f"{url}/v1/score", json={"texts": ["نص"]}).status_code == 200
        resp = httpx.post(f"{url}/v1/generate", json={"prompt": "نص", "max_new_tokens": 8}, timeout=60)
        assert resp.status_code == 200
    finally:
        serve.delete("gpu")


def test_rayservice_runs_the_same_serve_config():
    """serve/rayservice.yaml's serveConfigV2 parses with Serve's schema and is serve/config.yaml's app."""
    from ray.serve.schema import ServeDeploySchema

    service = yaml.safe_load((CONFIG.parent / "rayservice.yaml").read_text(encoding="utf-8"))
    assert service["kind"] == "RayService" and service["apiVersion"].startswith("ray.io/")
    inner = yaml.safe_load(service["spec"]["serveConfigV2"])
    app = ServeDeploySchema.model_validate(inner).applications[0]
    local = ServeDeploySchema.model_validate(load()).applications[0]
    assert app.import_path == local.import_path and app.route_prefix == local.route_prefix
    k8s_args, local_args = ServeArgs.model_validate(app.args), ServeArgs.model_validate(local.args)
    assert k8s_args.scorer.startswith("s3://") and k8s_args.generator.startswith("s3://")
    assert k8s_args.limits == local_args.limits  # same contract for clients wherever it runs
    assert set(app.args) == set(local.args)
    for group in [
        service["spec"]["rayClusterConfig"]["headGroupSpec"],
        *service["spec"]["rayClusterConfig"]["workerGroupSpecs"],
    ]:
        env = {e["name"]: e.get("value") for e in group["template"]["spec"]["containers"][0]["env"]}
        assert env["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] == "seqlab.serve.edge:proxy_middlewares"
        assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"  # fast path
        assert int(env["RAY_SERVE_HAPROXY_NBTHREAD"]) >= 1


# Prompts on which the test generator (random weights) streams text at almost every step.
PROMPTS = ["قرر المجلس البلدي", "في صباح يوم ممطر", "قرر المجلس البلدي"]


def _replica(artifacts, **batch):
    """The generator replica's class itself, outside Ray (the scheduler is plain asyncio)."""
    from seqlab.serve.deployments import GeneratorDeployment

    cls = GeneratorDeployment.func_or_class
    return cls(str(artifacts["generator"]), "cpu", 1, {"stream_interval_s": 0.0, **batch})


async def _drain(stream, log: list, name: str) -> str:
    text = ""
    async for item in stream:
        log.append((name, item))
        if isinstance(item, list):
            text += "".join(ev.text for ev in item)
    return text


def test_generator_replica_batches_continuously(artifacts):
    """A request that arrives mid-flight joins the running batch (its first text comes before the first
    request ends) and both get what they get alone; a newcomer past max_batch_size rows waits."""
    import asyncio

    from seqlab.lm.config import DecodingConfig
    from seqlab.lm.requests import GenerationRequest, PromptFit

    replica = _replica(artifacts, max_batch_size=2)
    long = GenerationRequest(
        PROMPTS[0], DecodingConfig(strategy="greedy", max_new_tokens=40, stop_at_eos=False)
    )
    short = GenerationRequest(
        PROMPTS[1], DecodingConfig(strategy="greedy", max_new_tokens=5, stop_at_eos=False)
    )
    third = GenerationRequest(
        PROMPTS[2], DecodingConfig(strategy="greedy", max_new_tokens=5, stop_at_eos=False)
    )
    log: list = []

    async def main():
        first = asyncio.create_task(_drain(replica.stream(long), log, "long"))
        for _ in range(10_000):  # bounded: a scheduler bug fails the test instead of hanging it
            if sum(name == "long" for name, _ in log) >= 4:  # the fit, then a few messages of text
                break
            await asyncio.sleep(0.001)
        assert not first.done(), "the long request must still be decoding when the others arrive"
        rows_while_alone = replica.scheduler.session.rows
        second = asyncio.create_task(_drain(replica.stream(short), log, "short"))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(_drain(replica.stream(third), log, "third"))
        return rows_while_alone, await asyncio.gather(first, second, waiting)

    rows_while_alone, texts = asyncio.run(main())
    assert rows_while_alone == 1
    assert isinstance(log[0][1], PromptFit) and log[0][1].tokens > 0
    order = [name for name, item in log if isinstance(item, list) and item]
    last_long = len(order) - 1 - order[::-1].index("long")
    assert order.index("short") < last_long, "the second request joined instead of waiting for the first"
    assert order.index("third") > order.index("short"), "max_batch_size=2: the third waited for a free row"
    for request, text in zip((long, short, third), texts, strict=True):
        assert text == replica.generator.generate(request.prompt, request.config)[0].text
    assert len(replica.scheduler.session) == 0 and not replica._queues


def test_generator_replica_drops_an_abandoned_request(artifacts):
    """A caller that goes away (client disconnect, deadline) stops being decoded at once."""
    import asyncio

    from seqlab.lm.config import DecodingConfig
    from seqlab.lm.requests import GenerationRequest

    replica = _replica(artifacts)
    request = GenerationRequest(PROMPTS[0], DecodingConfig(max_new_tokens=100, stop_at_eos=False, seed=1))

    async def main():
        stream = replica.stream(request)
        got = [await stream.__anext__() for _ in range(3)]  # the fit and two messages
        busy = replica.scheduler.session.rows
        await stream.aclose()
        for _ in range(200):
            if not len(replica.scheduler.session):
                break
            await asyncio.sleep(0.01)
        return got, busy, len(replica.scheduler.session)

    got, busy, after = asyncio.run(main())
    assert busy == 1 and after == 0
    assert sum(len(ev.text) > 0 for msg in got[1:] for ev in msg) >= 1


def test_the_ingress_never_imports_torch():
    """The ingress builds GenerationRequests and unpickles StreamEvents; neither may pull in torch
    (a 3 s import that would stall the first generation request and add ~170 MB per ingress replica)."""
    import subprocess
    import sys

    code = (
        "import pickle, sys\n"
        "import seqlab.serve.ingress\n"
        "from seqlab.lm.requests import GenerationRequest, StreamEvent\n"
        "pickle.loads(pickle.dumps([GenerationRequest('x'), StreamEvent(0, 'y', 'stop', 1)]))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
