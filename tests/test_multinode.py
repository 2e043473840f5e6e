"""Scale, simulated on one machine: a real three-node Ray cluster (a head and two "GPU" workers).

``ray.cluster_utils.Cluster`` starts a head (no CPUs, so work goes to the workers) and two worker nodes
that each advertise 2 CPUs and one logical GPU; there is no CUDA, so everything that asks for a GPU
must fall back to the CPU by itself. One scenario, run in a subprocess (its own cluster, stopped at the
end whatever happens), checks what ``cluster.yaml`` promises:

1. a search with ``gpus_per_trial=0.5`` runs two trials per GPU node, on both nodes at once;
2. one worker node is killed mid-search: its trials resume from their checkpoints on the other node
   and every trial finishes every epoch, none lost and none repeated;
3. (a fresh node joins) Ray Train with 2 workers and ``STRICT_SPREAD`` puts one worker on each node;
4. the Serve app with 2 scorer replicas (``max_replicas_per_node: 1``) has one on each node and keeps
   answering, only 200 or 503, while one node is removed.

About 3-4 minutes on 2 cores (marked slow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

EPOCHS = 8  # per trial: long enough that a node can be killed while every trial is mid-run
TRIALS = 4  # two per worker node (gpus_per_trial 0.5 on a 1-GPU node)


def _seqlab(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "seqlab"), *args], check=True, capture_output=True)


def _trial_reports(experiment: Path) -> dict[str, list[dict]]:
    """Every trial's epoch reports so far (Tune appends one JSON line per report to result.json)."""
    reports = {}
    for result in experiment.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        reports[result.parent.name] = lines
    return reports


def _kill_when_all_running(cluster, workers, experiment: Path, log: dict) -> None:
    """Remove the worker node whose trials are mid-run, once every trial has reported 2+ epochs."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        reports = _trial_reports(experiment)
        if len(reports) == TRIALS and all(2 <= len(r) < EPOCHS - 2 for r in reports.values()):
            victim = workers[0]
            log["killed_node"] = victim.node_id
            log["epochs_at_kill"] = {t: len(r) for t, r in reports.items()}
            cluster.remove_node(victim, allow_graceful=False)
            return
        if any(len(r) >= EPOCHS - 2 for r in reports.values()):
            log["missed"] = "a trial got too far before all were running"
            return
        time.sleep(0.1)
    log["missed"] = "timed out waiting for the trials"


def _actor_nodes(class_name: str, alive_only: bool = False) -> list[str]:
    """Node ids of the actors of one class, from the GCS actor table (dead ones too; no dashboard needed)."""
    import ray

    return [
        a["Address"]["NodeID"]
        for a in ray._private.state.actors().values()
        if a["ActorClassName"] == class_name and (a["State"] == "ALIVE" or not alive_only)
    ]


def tune_part(root: Path, cluster, workers) -> dict:
    from seqlab.config import load_config
    from seqlab.tune.config import TuneJobConfig
    from seqlab.tune.job import run_tune_job

    cfg = load_config(
        TuneJobConfig,
        None,
        [
            f"--data.path={root / 'corpus'}",
            f"--out={root / 'tune'}",
            "--data.max_docs=600",
            "--data.tokenizer.min_frequency=1",
            "--search.algorithm=random",
            "--search.scheduler=fifo",
            f"--search.num_samples={TRIALS}",
            f"--search.max_concurrent={TRIALS}",
            "--search.seed_architectures=false",
            "--search.space.cell=[gru]",
            "--search.space.bidirectional=[false]",
            "--search.space.hidden=[32]",
            "--search.space.embed_dim=[32]",
            "--search.space.layers=[1]",
            "--search.space.batch_size=[16]",
            f"--train.max_epochs={EPOCHS}",
            f"--train.patience={EPOCHS}",
            "--resources.gpus_per_trial=0.5",
            "--resources.cpus_per_trial=1",
            "--run.max_failures=3",
            "--run.verbose=0",
        ],
    )
    log: dict = {}
    experiment = root / "tune" / cfg.run.name
    killer = threading.Thread(target=_kill_when_all_running, args=(cluster, workers, experiment, log))
    killer.start()
    summary = run_tune_job(cfg)
    killer.join()
    log["num_trials"], log["total_trial_epochs"] = summary["num_trials"], summary["total_trial_epochs"]
    log["reports"] = {
        trial: [{k: r.get(k) for k in ("epoch", "node_id", "on_gpu")} for r in rows]
        for trial, rows in _trial_reports(experiment).items()
    }
    log["best"] = str(root / "tune" / "best")
    return log


def train_part(root: Path) -> dict:
    from seqlab.config import load_config
    from seqlab.lm.config import FinetuneJobConfig
    from seqlab.lm.finetune import run_finetune

    cfg = load_config(
        FinetuneJobConfig,
        None,
        [
            f"--data.path={root / 'corpus'}",
            f"--out={root / 'finetune'}",
            "--data.block_size=32",
            "--model.vocab_size=300",
            "--model.n_layer=1",
            "--model.n_embd=32",
            "--model.n_head=2",
            "--train.batch_size=4",
            "--train.max_steps=6",
            "--train.report_every=2",
            "--train.checkpoint_every=3",
            "--ray.num_workers=2",
            "--ray.placement_strategy=STRICT_SPREAD",
            "--eval.num_prompts=2",
            "--eval.prompt_tokens=4",
            "--eval.continuation_tokens=4",
            "--eval.strategies=[greedy]",
            "--eval.max_eval_blocks=8",
        ],
    )
    run_finetune(cfg)
    return {"train_worker_nodes": _actor_nodes("RayTrainWorker")}


def serve_part(root: Path, cluster, workers, best: str) -> dict:
    import httpx
    from ray import serve

    from seqlab.bench.servers import free_port
    from seqlab.serve.app import build_app
    from seqlab.serve.cli_serve import wait_until_ready
    from seqlab.serve.config import ServeArgs

    args = ServeArgs.model_validate(
        {
            "scorer": best,
            "device": "auto",
            "ingress": {"num_cpus": 0, "resources": {"head": 0.01}},  # the ingress stays on the head
            "scorer_deployment": {"num_replicas": 2, "num_cpus": 1, "max_replicas_per_node": 1},
            "limits": {"request_timeout_s": 10},
            "log_requests": False,
        }
    )
    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(args), name="seqlab", route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(url, timeout_s=120)
    replica_nodes = sorted(_actor_nodes("ServeReplica:seqlab:Scorer", alive_only=True))
    statuses: list[tuple[float, int]] = []
    stop = threading.Event()

    def load() -> None:
        body = {"texts": ["تعلم الآلة يغير طريقة بناء البرمجيات", "ذهبنا إلى السوق صباحا"]}
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    status = client.post(f"{url}/v1/score", json=body).status_code
                except httpx.HTTPError as exc:
                    status = -1 if not isinstance(exc, httpx.TimeoutException) else -2
                statuses.append((time.monotonic(), status))
                time.sleep(0.02)

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(3)
    victim = next(w for w in workers if w.node_id == replica_nodes[0])
    removed_at = time.monotonic()
    cluster.remove_node(victim, allow_graceful=False)
    time.sleep(12)
    stop.set()
    thread.join()
    serve.shutdown()
    return {
        "replica_nodes": replica_nodes,
        "worker_nodes": [w.node_id for w in workers],
        "removed_node": victim.node_id,
        "before": [s for t, s in statuses if t < removed_at],
        "after": [s for t, s in statuses if t >= removed_at],
        "late": [s for t, s in statuses if t >= removed_at + 6],
    }


def scenario(root: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    os.environ["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = "seqlab.serve.edge:proxy_middlewares"
    os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    _seqlab("corpus", "--n-docs", "600", "--out", str(root / "corpus"))
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "num_gpus": 0, "resources": {"head": 1}, "include_dashboard": False},
    )
    try:
        workers = [cluster.add_node(num_cpus=2, num_gpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        os.environ["RAY_ADDRESS"] = cluster.address
        result: dict = {"workers": [w.node_id for w in workers]}
        started = time.monotonic()
        result["tune"] = tune_part(root, cluster, workers)
        result["tune_s"] = time.monotonic() - started
        survivors = [w for w in workers if w.node_id != result["tune"].get("killed_node")]
        workers = [*survivors, cluster.add_node(num_cpus=2, num_gpus=1)]  # a fresh node replaces it
        cluster.wait_for_nodes()
        result["workers_after_tune"] = [w.node_id for w in workers]
        started = time.monotonic()
        result["train"] = train_part(root)
        result["train_s"] = time.monotonic() - started
        started = time.monotonic()
        result["serve"] = serve_part(root, cluster, workers, result["tune"]["best"])
        result["serve_s"] = time.monotonic() - started
        return result
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_trials_training_and_replicas_spread_over_nodes_and_survive_losing_one(tmp_path):
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[2]); import test_multinode as m; from pathlib import Path;"
        "json.dump(m.scenario(Path(sys.argv[1])), open(Path(sys.argv[1]) / 'result.json', 'w'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(Path(__file__).parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    (tmp_path / "scenario.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    result = json.loads((tmp_path / "result.json").read_text())
    tune, workers = result["tune"], set(result["workers"])

    # 1. Placement: two trials per GPU node, both nodes busy at once; no CUDA, so every trial ran on CPU.
    assert "missed" not in tune, tune.get("missed")
    first_nodes = [rows[0]["node_id"] for rows in tune["reports"].values()]
    assert len(tune["reports"]) == TRIALS
    assert sorted(first_nodes.count(n) for n in workers) == [2, 2], first_nodes
    assert all(r["on_gpu"] == 0 for rows in tune["reports"].values() for r in rows)

    # 2. The killed node's trials moved to the survivor and resumed from their checkpoints: every trial
    # reported every epoch exactly once, the moved ones continuing where their checkpoint left off.
    killed = tune["killed_node"]
    moved = [t for t, rows in tune["reports"].items() if rows[0]["node_id"] == killed]
    assert len(moved) == 2
    for trial, rows in tune["reports"].items():
        assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1)), (trial, rows)
    assert (tune["num_trials"], tune["total_trial_epochs"]) == (
        TRIALS,
        TRIALS * EPOCHS,
    )  # the search's own count
    assert Path(tune["best"], "manifest.json").is_file(), "the search exported its best scorer"
    for trial in moved:
        rows = tune["reports"][trial]
        assert rows[-1]["node_id"] != killed
        at_kill = tune["epochs_at_kill"][trial]
        assert all(r["node_id"] == killed for r in rows[:at_kill])

    # 3. Ray Train: one worker per node.
    train_nodes = result["train"]["train_worker_nodes"]
    assert len(train_nodes) == 2 and len(set(train_nodes)) == 2
    assert set(train_nodes) == set(result["workers_after_tune"])

    # 4. Serve: one scorer replica per node; only 200/503 while a node goes, and answers go on after it.
    serve = result["serve"]
    assert len(set(serve["replica_nodes"])) == 2 and set(serve["replica_nodes"]) <= set(serve["worker_nodes"])
    assert serve["before"] and set(serve["before"]) == {200}
    assert set(serve["after"]) <= {200, 503}, sorted(set(serve["after"]))
    assert serve["late"].count(200) >= 10, "the surviving replica must keep answering"
    print(
        f"multinode: tune {result['tune_s']:.0f} s, train {result['train_s']:.0f} s, serve {result['serve_s']:.0f} s;"
        f" after the node loss: {serve['after'].count(200)} x 200, {serve['after'].count(503)} x 503"
    )
