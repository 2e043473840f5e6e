"""Starting or joining Ray, the same way for every job and CLI verb."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "seqlab.serve.edge:proxy_middlewares"


class RayUnavailable(ConnectionError):
    """The Ray cluster named by ``RAY_ADDRESS`` does not answer."""


CONNECT_TIMEOUT_S = 10.0


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`RayUnavailable` unless something accepts TCP connections at ``address``.

    ``ray.init`` on a dead GCS address retries for minutes ("Failed to connect to GCS") and ignores
    SIGTERM meanwhile; this bounded probe turns that into one clear error. ``auto`` is resolved the way
    Ray resolves it (``/tmp/ray/ray_current_cluster``); ``ray://`` client addresses are probed too.
    """
    import socket

    target = address
    if target == "auto":
        current = os.path.join(os.environ.get("RAY_TMPDIR", "/tmp/ray"), "ray_current_cluster")
        try:
            with open(current, encoding="utf-8") as f:
                target = f.read().strip()
        except OSError:
            raise RayUnavailable(
                f"RAY_ADDRESS=auto but no Ray cluster was started here ({current} is missing)"
            ) from None
    hostport = target.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"RAY_ADDRESS={address!r} is not host:port (for example 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailable(
            f"no Ray cluster answers at {target} (RAY_ADDRESS={address}): {exc.strerror or exc}; "
            "start one with `ray start --head`, or unset RAY_ADDRESS to run on a new local Ray"
        ) from None


def _runtime_env(kwargs: dict) -> dict:
    """``kwargs``' runtime_env (taken out of them) plus the hook that quiets library logs in each worker."""
    from seqlab.logs import worker_setup_hook

    return {**worker_setup_hook(), **(kwargs.pop("runtime_env", None) or {})}


def init_ray(num_cpus: int | None = None, **kwargs) -> bool:
    """Join the cluster at ``RAY_ADDRESS`` (set by ``ray job submit``) or start a local one.

    The rule: a new local Ray unless ``RAY_ADDRESS`` names a cluster (``auto``, ``host:port``,
    ``ray://host:port``; ``local`` asks for a new local Ray, as Ray reads it); never whatever cluster
    ``/tmp/ray/ray_current_cluster`` happens to name. A cluster that does not answer within
    :data:`CONNECT_TIMEOUT_S` is :class:`RayUnavailable`, never a hang.

    Returns True when this call started Ray (so the caller should shut it down), False when Ray was
    already initialized or a cluster was joined.
    """
    import ray

    from seqlab.interrupts import sigterm_as_interrupt

    if ray.is_initialized():
        return False
    if not sys.stdout.isatty():  # Ray Data's progress bars are escape codes in a log file or a pipe
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address and address != "local":  # "local" means a new local Ray, as it does to Ray itself
        check_reachable(address)
        ray.init(address=address, runtime_env=_runtime_env(kwargs), **kwargs)
        sigterm_as_interrupt()  # ray.init put its own SIGTERM handler (sys.exit mid-call) in our place
        log.info("joined the Ray cluster at %s (RAY_ADDRESS)", address)
        return False
    # Serve's HTTP proxy (if this Ray serves the app later) installs seqlab's edge middleware; the proxy
    # inherits this process's environment when it is the one that starts Ray.
    os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_CALLBACK)
    # One machine: no node to be preempted. Ray Train's preemption watcher (for spot nodes) only logged a
    # C++ error line per training run here ("constructor arguments in the object store").
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # address="local": always a new local Ray, never whatever cluster /tmp/ray/ray_current_cluster names
    # (a stale one would hang ray.init); joining a cluster is what RAY_ADDRESS is for. Serve on that Ray
    # takes the fast path (HAProxy, direct ingress; see seqlab.serve.fastpath).
    from seqlab.serve import fastpath

    with fastpath.scoped():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            runtime_env=_runtime_env(kwargs),
            **kwargs,
        )
    sigterm_as_interrupt()
    log.info(
        "started a new local Ray with %s CPUs (set RAY_ADDRESS to join a cluster)",
        ray.cluster_resources().get("CPU"),
    )
    return True


@contextlib.contextmanager
def ray_session(num_cpus: int | None = None, **kwargs) -> Iterator[bool]:
    """Ray for the ``with`` block (:func:`init_ray`'s rule), shut down after it only if this started it.

    Example::

        with ray_session():
            run_scrape(cfg)

    Yields:
        True when the block runs on a Ray this call started, False on a joined or already running one.
    """
    started = init_ray(num_cpus, **kwargs)
    try:
        yield started
    finally:
        if started:
            import ray

            ray.shutdown()
