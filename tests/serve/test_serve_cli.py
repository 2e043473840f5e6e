"""``seqlab serve``: clear errors before anything starts, and a real run in its own process (own Ray)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from seqlab.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "at least one of scorer or generator"),
        (["--scorer", "/nonexistent/dir"], "is not a directory"),
        (["--port", "0", "--scorer", "{scorer}"], "port"),
        (["--generator", "{scorer}"], "is it a scorer artifact"),
        (["--scorer", "{generator}"], "is it a generator artifact"),
        (["--scorer", "{scorer}", "--limits.max_textz=3"], "max_textz"),
        (["--config", "/nonexistent.yaml"], "cannot read serve config"),
    ],
)
def test_bad_invocations_fail_before_starting_anything(capsys, artifacts, argv, message):
    argv = [a.format(scorer=artifacts["scorer"], generator=artifacts["generator"]) for a in argv]
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_busy_port_is_named(capsys, artifacts):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["serve", "--scorer", str(artifacts["scorer"]), "--port", str(port)]) == 2
    assert "in use" in capsys.readouterr().err


@pytest.mark.slow
def test_seqlab_serve_runs_prints_examples_and_stops_on_ctrl_c(artifacts, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "seqlab", "serve", "--scorer", str(artifacts["scorer"])]
    cmd += ["--generator", str(artifacts["generator"]), "--port", str(port), "--num-cpus", "2"]
    # stderr to a file, not a pipe: Ray and Serve log there, and a pipe nobody reads until the end fills
    # (64 KiB) and blocks the server mid-shutdown, which reads as "Ctrl-C does not stop it"
    stderr = open(tmp_path / "serve.stderr", "w+", encoding="utf-8")
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        start_new_session=True,
        # as in a terminal: a pytest started in the background (CI, nohup) ignores SIGINT, and so would its child
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def err() -> str:
        stderr.flush()
        return (tmp_path / "serve.stderr").read_text(encoding="utf-8")

    try:
        lines, url = [], None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"seqlab is serving at (\S+)", line)
            url = found.group(1) if found else None
        assert url == f"http://127.0.0.1:{port}", "".join(lines) + err()
        while not lines[-1].startswith("Press Ctrl-C"):
            lines.append(proc.stdout.readline())
        printed = "".join(lines)
        # keep reading stdout too (Ray forwards the replicas' output to it), for the same reason as stderr
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        assert f"curl -s {url}/v1/score" in printed and f"{url}/v1/completions" in printed
        assert f"playground: {url}/playground" in printed
        root = httpx.get(f"{url}/", timeout=60, follow_redirects=False)  # no route prefix here
        assert root.status_code == 307 and root.headers["location"] == "/playground"
        assert httpx.get(f"{url}/playground", timeout=60).status_code == 200
        resp = httpx.post(f"{url}/v1/score", json={"texts": ["تعمل الشركة على تطوير خوارزمية"]}, timeout=60)
        assert resp.status_code == 200 and len(resp.json()["scores"]) == 1
        resp = httpx.post(
            f"{url}/v1/completions",
            json={"model": "seqlab-generator", "prompt": "هطل", "max_tokens": 4},
            timeout=60,
        )
        assert resp.status_code == 200 and resp.json()["object"] == "text_completion"
        _answers_http_only_on_loopback(proc.pid)
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("seqlab serve did not stop within 120 s of Ctrl-C; its stderr:\n" + err()[-4000:])
        assert code == 130, err()[-4000:]  # stopped by SIGINT: 128 + 2, as every long-running verb
        assert "stopping Serve" in err()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/healthz", timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stderr.close()


def _answers_http_only_on_loopback(root: int) -> None:
    """The fast path is on (HAProxy runs) and, of all that ``seqlab serve`` started, nothing beyond loopback
    answers the app's HTTP; HAProxy listens on loopback alone (its frontend, stats page and metrics)."""
    import ipaddress

    from seqlab.bench.servers import psutil_module

    psutil = psutil_module()
    top = psutil.Process(root)
    haproxy, beyond = [], []
    for proc in [top, *top.children(recursive=True)]:
        try:
            name, listening = proc.name(), [c for c in proc.net_connections("tcp") if c.status == "LISTEN"]
        except psutil.Error:
            continue
        for conn in listening:
            loopback = ipaddress.ip_address(conn.laddr.ip).is_loopback
            if name == "haproxy":
                haproxy.append((conn.laddr.ip, conn.laddr.port))
            elif not loopback:
                beyond.append((name, conn.laddr.port))
    assert len(haproxy) >= 3, haproxy  # the frontend, the stats page, the Prometheus exporter
    assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in haproxy), haproxy
    for name, port in beyond:  # Ray's own gRPC servers and agents bind every interface: none is the app
        try:
            resp = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3)
        except httpx.HTTPError:
            continue
        assert not (resp.status_code == 200 and "scorer" in resp.text), (name, port, resp.text[:200])


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--num-cpus", "-1"], "--num-cpus must be at least 1 (got -1)"),
        (["--num-cpus", "0"], "--num-cpus must be at least 1 (got 0)"),
        (
            ["--num-cpus", "1", "--scorer_deployment.num_cpus=2"],
            "fewer than the app's replicas reserve (2.25",
        ),
        (["--host", "0.0.0.0"], "listens beyond this machine and SEQLAB_API_KEY is not set"),
    ],
)
def test_serve_refuses_what_would_hang_or_expose_it_before_ray(artifacts, capsys, monkeypatch, flags, says):
    import seqlab.ray_utils

    monkeypatch.delenv("SEQLAB_API_KEY", raising=False)
    monkeypatch.setattr(seqlab.ray_utils, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    assert main(["serve", "--scorer", str(artifacts["scorer"]), *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_listening_beyond_loopback_needs_a_key_or_the_explicit_flag():
    from seqlab.serve.cli_serve import _is_loopback

    assert _is_loopback("127.0.0.1") and _is_loopback("127.5.0.1") and _is_loopback("::1")
    assert _is_loopback("localhost") and not _is_loopback("0.0.0.0") and not _is_loopback("10.1.2.3")
    assert not _is_loopback("myhost.example")
