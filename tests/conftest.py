"""Shared fixtures: one session-scoped local Ray, GPU skipping, small thread counts for 2-core CI."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
# Serve's proxy on the session Ray gets seqlab's edge middleware (as `seqlab serve` sets it up).
os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", "seqlab.serve.edge:proxy_middlewares")


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for the whole test session (2 CPUs, no dashboard), shut down at the end.

    Serve on it takes the fast path (HAProxy in front, direct ingress), as on the Ray `seqlab serve`
    starts: every Serve test runs on the path users get.
    """
    import ray

    from seqlab.serve import fastpath

    if not ray.is_initialized():
        with fastpath.scoped():
            ray.init(
                address="local",  # never join a cluster another test (or the user) started with `ray start`
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    yield ray
    ray.shutdown()


class RayHead:
    """A separate `ray start --head` cluster for `ray job submit` tests (see the ``ray_head`` fixture)."""

    def __init__(self, address: str, env: dict[str, str], bin_dir) -> None:
        self.address, self.env, self.bin = address, env, bin_dir

    def submit(self, entrypoint: list[str], cwd, timeout: float = 400):
        """``ray job submit --working-dir . -- <entrypoint>``; retried while the job agent is not up yet."""
        import subprocess
        import time

        cmd = [str(self.bin / "ray"), "job", "submit", "--address", self.address, "--working-dir", ".", "--"]
        deadline = time.monotonic() + 300  # the head's job agent may start well after its job server
        while True:
            done = subprocess.run(
                [*cmd, *entrypoint], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=self.env
            )
            if "No available agent" not in done.stderr + done.stdout or time.monotonic() > deadline:
                return done
            time.sleep(5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A private Ray head on loopback (its own ports and temp dir), stopped by its process id at the end.

    No token auth, so the head, the CLI and the job agree without touching the user's ~/.ray/auth_token.
    Every port is explicit: the session Ray of the other tests already holds the default agent ports, and
    a head whose dashboard agent cannot bind never accepts jobs ("No available agent").
    """
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    from seqlab.serve import fastpath

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    port, dash = _free_port(), _free_port()
    ports = {
        "--dashboard-agent-listen-port": _free_port(),
        "--dashboard-agent-grpc-port": _free_port(),
        "--metrics-export-port": _free_port(),
        "--runtime-env-agent-port": _free_port(),
        "--ray-client-server-port": _free_port(),
        "--node-manager-port": _free_port(),
        "--object-manager-port": _free_port(),
    }
    temp_dir = tmp_path_factory.mktemp("rayhead")
    # Serve's fast path on this head too, as cluster.yaml's `eval "$(python -m seqlab.serve.fastpath)"` gives
    # its nodes
    env.update(fastpath.fast_path_env(env, local=True))
    proc = subprocess.Popen(
        [
            str(bin_dir / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            f"--dashboard-port={dash}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--num-cpus=2",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            *(f"{flag}={value}" for flag, value in ports.items()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    address = f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(bin_dir / "ray"), "job", "list", "--address", address],
            capture_output=True,
            text=True,
            env=env,
        )
        if ready.returncode == 0:
            break
        time.sleep(2)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("the Ray head's job server did not come up within 120 s")
    yield RayHead(address, env, bin_dir)
    # Serve first (the deploy test leaves its app up, as on a cluster): Serve stops its HAProxy; killing the
    # head's processes would leave that HAProxy running, an orphan holding its ports.
    subprocess.run(
        [str(bin_dir / "serve"), "shutdown", "--address", address, "-y"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    _stop_orphaned_haproxy(env.get("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"))


def _stop_orphaned_haproxy(config_file: str | None) -> None:
    """Kill, by process id, any HAProxy still running on this head's configuration folder."""
    if not config_file:
        return
    from seqlab.bench.servers import psutil_module

    psutil = psutil_module()
    folder = os.path.dirname(config_file)
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "haproxy" and any(folder in arg for arg in proc.info["cmdline"] or ()):
            proc.kill()


def _signal_when(proc, ready, sig: int, timeout: float = 300) -> tuple[int, str]:
    """Send ``sig`` to ``proc`` once ``ready()`` holds (unless it ended first); returns (returncode, stderr).

    The process is killed if it outlives the wait, so a hung driver never outlives its test.
    """
    import time

    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


@pytest.fixture
def signal_when():
    """Fault injection on a real seqlab process: ``signal_when(proc, ready, signal.SIGKILL)``."""
    return _signal_when
