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

    from seqlab.serve.cli import read_serve_config

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
    from seqlab.serve.cli import read_serve_config

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
    from seqlab.serve.cli import read_serve_config

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
            "scorer_deployment": {"num_replicas": 3, "num_gpus": 0.25, "max_queued_requests": 7},
            "generator_deployment": {"autoscaling": {"min_replicas": 1, "max_replicas": 4}},
        }
    )
    scorer = cfg.scorer_deployment.serve_options()
    assert scorer["num_replicas"] == 3 and scorer["ray_actor_options"]["num_gpus"] == 0.25
    assert scorer["max_queued_requests"] == 7
    generator = cfg.generator_deployment.serve_options()
    assert "num_replicas" not in generator and generator["autoscaling_config"]["max_replicas"] == 4


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


def test_stream_chunks_merge_steps_per_candidate_and_flush_on_finish():
    from seqlab.lm.generator import StreamEvent
    from seqlab.serve.deployments import _next_chunk

    steps = iter(
        [
            [[StreamEvent(0, "a"), StreamEvent(1, "x")], []],
            [[StreamEvent(0, "b")], [StreamEvent(0, "p")]],
            [[StreamEvent(0, "c", "length", 3)], []],  # request 0's candidate 0 finishes: flush here
            [[StreamEvent(1, "y", "stop", 2)], [StreamEvent(0, "q", "length", 2)]],
        ]
    )
    first = _next_chunk(steps, 2, interval_s=60)
    assert [(e.index, e.text, e.finish_reason, e.completion_tokens) for e in first[0]] == [
        (0, "abc", "length", 3),
        (1, "x", None, 0),
    ]
    assert [(e.index, e.text) for e in first[1]] == [(0, "p")]
    second = _next_chunk(steps, 2, interval_s=60)
    assert [(e.text, e.finish_reason) for e in second[0]] == [("y", "stop")]
    assert [(e.text, e.finish_reason) for e in second[1]] == [("q", "length")]
    assert _next_chunk(steps, 2, interval_s=60) is None
    one_by_one = _next_chunk(iter([[[StreamEvent(0, "a")]], [[StreamEvent(0, "b")]]]), 1, interval_s=0)
    assert [e.text for e in one_by_one[0]] == ["a"]  # interval 0: every step is its own message


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
