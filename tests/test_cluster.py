"""cluster.yaml passes Ray's own cluster-launcher validation (offline) and installs this checkout of seqlab."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_validates_with_rays_launcher():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text(encoding="utf-8"))
    config = prepare_config(raw)  # fills the launcher's defaults (raw YAML lacks cluster_synced_files)
    validate_config(config)  # raises on a schema error
    assert config["head_node_type"] in config["available_node_types"]
    workers = {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}
    assert workers and all(v["max_workers"] >= 1 for v in workers.values())


def test_nodes_install_this_checkout_and_the_edge_middleware():
    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text(encoding="utf-8"))
    mounted = {remote for remote, local in raw["file_mounts"].items() if local == "."}
    assert mounted, "the checkout is not mounted on the nodes"
    setup = " ".join(raw["setup_commands"])
    assert any(f"pip install -q -e {m}" in setup for m in mounted), setup
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = " ".join(raw[key])
        assert "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=seqlab.serve.edge:proxy_middlewares" in start
        # Serve's fast path, from the one module that knows its variables
        assert start.index('eval "$(python -m seqlab.serve.fastpath)" &&') < start.index("ray start")
