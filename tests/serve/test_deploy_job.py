"""``jobs/deploy.py`` through ``ray job submit`` on a real head: the job returns, the app keeps serving."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_deploy_job_leaves_the_app_serving(ray_head, artifacts):
    from seqlab.serve.cli_serve import wait_until_ready

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = ray_head.submit(
        [
            "python",
            "jobs/deploy.py",
            "--config",
            "jobs/deploy.yaml",
            f"--http.port={port}",
            f"--app.scorer={artifacts['scorer']}",
            f"--app.generator={artifacts['generator']}",
            "--app.device=cpu",
            "--app.ingress.num_cpus=0",
            "--app.scorer_deployment.num_cpus=0",
            "--app.generator_deployment.num_cpus=0",
        ],
        cwd=ROOT,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "succeeded" in out, out[-4000:]
    assert f"serving at http://127.0.0.1:{port}" in out
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(url, timeout_s=60)  # the job has ended; Serve's detached controller kept the app
    resp = httpx.post(f"{url}/v1/score", json={"texts": ["تعمل الشركة على تطوير خوارزمية"]}, timeout=60)
    assert resp.status_code == 200 and len(resp.json()["scores"]) == 1
    models = httpx.get(f"{url}/v1/models", timeout=30).json()
    assert {m["id"] for m in models["data"]} == {"seqlab-scorer", "seqlab-generator"}
