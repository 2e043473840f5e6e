"""`ray job submit` against a real local Ray cluster (head started with `ray start`), as users run stages."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from seqlab.artifacts import read_manifest
from seqlab.data.corpus import generate_documents
from seqlab.data.site import LocalSite

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# A private test cluster on loopback: no token auth, so the head, the CLI and the job agree without
# touching the user's ~/.ray/auth_token.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
ENV.pop("RAY_ADDRESS")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A separate Ray head (its own ports and temp dir), stopped by its process id at the end."""
    # Every port explicit: the session Ray of the other tests already holds the default agent ports,
    # and a head whose dashboard agent cannot bind never accepts jobs ("No available agent").
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
    proc = subprocess.Popen(
        [
            str(BIN / "ray"),
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
        env=ENV,
    )
    address = f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(BIN / "ray"), "job", "list", "--address", address], capture_output=True, text=True, env=ENV
        )
        if ready.returncode == 0:
            break
        time.sleep(2)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("the Ray head's job server did not come up within 120 s")
    yield address
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_scrape_job_via_ray_job_submit(ray_head, tmp_path):
    docs = generate_documents(25, seed=5)
    out = tmp_path / "scrape"
    with LocalSite(docs, port=0, faults=False, seed=5) as site:
        cmd = [
            str(BIN / "ray"),
            "job",
            "submit",
            "--address",
            ray_head,
            "--working-dir",
            ".",
            "--",
            "python",
            "jobs/scrape.py",
            "--config",
            "jobs/scrape.yaml",
            f"--sources.seeds=[{site.index_url}]",
            f"--out={out}",
            "--labels=null",
            "--sources.max_pages=20",
        ]
        deadline = time.monotonic() + 300  # the head's job agent may start well after its job server
        while True:
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400, env=ENV)
            if "No available agent" not in done.stderr + done.stdout or time.monotonic() > deadline:
                break
            time.sleep(5)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in (done.stdout + done.stderr)
    corpus = pd.read_parquet(out / "corpus")
    assert 0 < len(corpus) <= 20
    assert read_manifest(out)["labeler"] == "lexicon"
