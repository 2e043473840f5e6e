"""Starting or joining Ray, the same way for every job and CLI verb."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


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
    ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    log.info("started a local Ray with %s CPUs", ray.cluster_resources().get("CPU"))
    return True
