"""The fast-path environment (seqlab.serve.fastpath): what it sets, what it leaves alone, and the wrapper
that keeps HAProxy's stats page and metrics on loopback. Ray-free; the Serve tests run on the path itself."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.serve import fastpath

# The shape of Ray 2.60's generated configuration (ray/serve/_private/haproxy_templates.py), shortened.
RAY_CONFIG = """global
    stats socket /tmp/x/admin.sock mode 666 level admin expose-fd listeners
defaults
    mode http
frontend prometheus
    bind :9101
    mode http
frontend http_frontend
    bind *:8000
    default_backend default_backend
frontend grpc_frontend
    bind *:9000 proto h2
listen stats
  bind *:8404
  stats enable
"""


def _fake_haproxy(tmp_path: Path) -> Path:
    """An executable that records its process id, arguments and the configuration it was given."""
    fake = tmp_path / "real-haproxy"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "pid=$$"\n'
        'echo "args=$*"\n'
        'while [ "$#" -gt 0 ]; do if [ "$1" = "-f" ]; then cat "$2"; fi; shift; done\n'
    )
    fake.chmod(0o755)
    return fake


def test_admin_binds_move_to_loopback_and_the_serve_frontends_keep_their_host():
    out = fastpath.loopback_admin_config(RAY_CONFIG)
    assert "frontend prometheus\n    bind 127.0.0.1:9101\n" in out
    assert "listen stats\n  bind 127.0.0.1:8404\n" in out
    # --host 0.0.0.0 renders as "*": that is the user's choice, left as it is (HTTP and gRPC)
    assert "    bind *:8000\n" in out and "    bind *:9000 proto h2\n" in out
    assert out.count("\n") == RAY_CONFIG.count("\n")
    assert "bind 10.0.0.5:8404" in fastpath.loopback_admin_config(RAY_CONFIG, host="10.0.0.5")


@pytest.fixture
def short():
    """A short folder (HAProxy's socket path limit leaves 29 characters for it); removed after."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_environment_it_sets_and_what_it_leaves_to_the_user(tmp_path, short):
    fake = _fake_haproxy(tmp_path)
    env = fastpath.fast_path_env({fastpath.BINARY_ENV: str(fake)}, folder=short / "a", cpus=2)
    assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert env["RAY_SERVE_HAPROXY_NBTHREAD"] == "1"  # 2 cores: one HAProxy thread, not Ray's 4
    assert env[fastpath.REAL_BINARY_ENV] == str(fake)
    assert fastpath.BINARY_ENV not in env  # the user's own binary setting is theirs...
    assert Path(env["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent == short / "a"
    assert env["RAY_SERVE_HAPROXY_STATS_PORT"] != env["RAY_SERVE_HAPROXY_METRICS_PORT"]
    assert "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S" not in env  # a cluster keeps Ray's drain
    # ...and every variable the user set wins
    mine = {fastpath.REAL_BINARY_ENV: str(fake), "RAY_SERVE_HAPROXY_NBTHREAD": "3"}
    local = fastpath.fast_path_env(mine, folder=short / "b", cpus=16, local=True)
    assert (
        "RAY_SERVE_HAPROXY_NBTHREAD" not in local and local["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]
    )
    assert os.access(local[fastpath.BINARY_ENV], os.X_OK)  # Ray runs seqlab's wrapper as HAProxy
    assert fastpath.fast_path_env({fastpath.OPT_OUT_ENV: "0", fastpath.BINARY_ENV: str(fake)}) == {}
    assert fastpath.fast_path_env({fastpath.BINARY_ENV: str(tmp_path / "missing")}) == {}
    # HAProxy refuses an admin socket path over 97 characters (Ray adds a 56-character node id to it)
    with pytest.raises(ValueError, match="too long"):
        fastpath.fast_path_env({fastpath.BINARY_ENV: str(fake)}, folder=tmp_path / ("x" * 40))
    folder = Path(
        fastpath.fast_path_env({fastpath.BINARY_ENV: str(fake)})["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]
    ).parent
    assert len(f"{folder}/{'0' * 56}/admin.sock") <= 97


@pytest.mark.parametrize("cpus, threads", [(1, 1), (2, 1), (3, 1), (6, 3), (16, 4), (64, 4)])
def test_haproxy_threads_fit_the_machine(cpus, threads):
    assert fastpath.haproxy_threads(cpus) == threads


def test_the_wrapper_becomes_the_real_haproxy_with_admin_binds_on_loopback(tmp_path):
    fake = _fake_haproxy(tmp_path)
    config = tmp_path / "haproxy.cfg"
    config.write_text(RAY_CONFIG)
    wrapper = fastpath.wrapper_script(tmp_path)
    env = {**os.environ, fastpath.REAL_BINARY_ENV: str(fake), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [str(wrapper), "-db", "-f", str(config), "-sf", "123"], env=env, stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"pid={proc.pid}\n" in out  # exec, not a child: Ray signals this pid on reload and stop
    assert f"args=-db -f {config}.seqlab -sf 123\n" in out
    assert "bind 127.0.0.1:8404" in out and "bind 127.0.0.1:9101" in out and "bind *:8000" in out
    assert config.read_text() == RAY_CONFIG  # Ray's own file is not touched


def test_the_wrapper_without_a_real_binary_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != fastpath.REAL_BINARY_ENV}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [str(fastpath.wrapper_script(tmp_path)), "-f", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and fastpath.REAL_BINARY_ENV in done.stderr


def test_scoped_sets_the_path_for_the_block_only(tmp_path, caplog):
    fake = _fake_haproxy(tmp_path)
    environ = {fastpath.REAL_BINARY_ENV: str(fake), "KEEP": "1"}
    with fastpath.scoped(environ) as env:
        assert environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env
        folder = Path(environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent
        assert folder.is_dir()
    assert environ == {fastpath.REAL_BINARY_ENV: str(fake), "KEEP": "1"}
    # no HAProxy: one line that says Serve takes the default path, and nothing set
    environ = {fastpath.BINARY_ENV: str(tmp_path / "missing")}
    with caplog.at_level(logging.INFO, logger="seqlab.serve.fastpath"), fastpath.scoped(environ) as env:
        assert env == {} and "RAY_SERVE_ENABLE_HA_PROXY" not in environ
    assert [r.getMessage() for r in caplog.records if "default Python proxy" in r.getMessage()]


def test_module_prints_exports_a_shell_can_eval(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_SERVE_", "SEQLAB_HAPROXY"))}
    env["TMPDIR"] = str(tmp_path)
    script = f'eval "$({sys.executable} -m seqlab.serve.fastpath)" && env'
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if fastpath.haproxy_binary(env) is None:
        pytest.skip("no HAProxy binary on this machine")
    assert got["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert os.access(got[fastpath.BINARY_ENV], os.X_OK)  # the wrapper, in a folder short enough for HAProxy
    assert len(got["RAY_SERVE_HAPROXY_SOCKET_PATH"]) + 57 <= 97
