"""Starting or joining Ray, the same way for every job and CLI verb."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "seqlab.serve.edge:proxy_middlewares"


def init_ray(num_cpus: int | None = None, **kwargs) -> bool:
    """Join the cluster at ``RAY_ADDRESS`` (set by ``ray job submit``) or start a local one.

    Returns True when this call started Ray (so the caller should shut it down), False when Ray was
    already initialized or a cluster was joined.
    """
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
        log.info("joined Ray cluster at %s", os.environ["RAY_ADDRESS"])
        return False
    # Serve's HTTP proxy (if this Ray serves the app later) installs seqlab's edge middleware; the proxy
    # inherits this process's environment when it is the one that starts Ray.
    os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_CALLBACK)
    if not sys.stdout.isatty():  # Ray Data's progress bars are escape codes in a log file or a pipe
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # address="local": always a new local Ray, never whatever cluster /tmp/ray/ray_current_cluster names
    # (a stale one would hang ray.init); joining a cluster is what RAY_ADDRESS is for.
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    log.info("started a local Ray with %s CPUs", ray.cluster_resources().get("CPU"))
    return True
