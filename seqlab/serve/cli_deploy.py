"""``seqlab deploy --config jobs/deploy.yaml``: start or update the seqlab app on a running cluster and return.

Meant for ``ray job submit ... -- python jobs/deploy.py`` (RAY_ADDRESS set): Serve's controller is
detached, so the app keeps serving after this job ends; running it again with new artifacts updates the
app in place (Serve rolls the replicas). Without a cluster to join there is nothing that would keep the
app up, so it refuses; use ``seqlab serve`` on a laptop.
"""

from __future__ import annotations

import argparse
import os

from seqlab.config import ConfigError, add_config_arguments, load_config
from seqlab.serve.config import DeployJobConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default=None)
    parser.add_argument("--address", help="Ray cluster to deploy to (default: $RAY_ADDRESS)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(DeployJobConfig, args.config, args.overrides)
    address = args.address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ConfigError(
            "deploy needs a running cluster: submit it with 'ray job submit' or pass --address "
            "(for a local app that stops with the command, use 'seqlab serve')"
        )
    import ray

    from seqlab.ray_utils import check_reachable
    from seqlab.serve.cli_serve import start_local

    check_reachable(address)
    ray.init(address=address)
    try:
        url = start_local(
            cfg.app,
            cfg.http.model_dump(),
            name=cfg.name,
            route_prefix=cfg.route_prefix,
            ready_timeout_s=cfg.wait_ready_s,
        )
        print(f"seqlab app {cfg.name!r} is serving at {url} (on the cluster's proxies); this job can end now")
        print(f"stop it with: serve shutdown --address {address} -y   (or: serve delete ... {cfg.name})")
    finally:
        ray.shutdown()  # disconnects; Serve's detached controller keeps the app running
    return 0
