"""``seqlab bench serve`` at a tiny size: both halves, both serving paths beside the bare server, every
row and ratio printed with positive figures.

The benchmark starts its own local Rays (one per serving path), so it runs as a subprocess (without
``RAY_ADDRESS``) and never touches the test session's shared Ray. The pure helpers are checked in-process.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.bench import load
from seqlab.bench import serve as bench
from seqlab.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
SERVERS = ("bare FastAPI", "Serve default", "Serve fast path")
LEVELS = (1, 4)
NUM = r"([\d.]+|nan)"
ROW_RE = re.compile(
    rf"^\s+(?P<name>bare FastAPI|Serve default|Serve fast path)\s+(?P<conc>\d+)\s+(?P<ok>\d+)\s+(?P<err>\d+)"
    rf"\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}$"
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def _rows(section: str) -> dict[tuple[str, int], list[float]]:
    rows = {}
    for match in map(ROW_RE.match, section.splitlines()):
        if match:
            rows[(match["name"], int(match["conc"]))] = [
                float(match["ok"]),
                float(match["err"]),
                *(float(g) for g in match.groups()[4:]),
            ]
    return rows


def _ratio(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r":\s+([\d.]+)x", text)
    assert match, f"no {label!r} in:\n{text}"
    return float(match.group(1))


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == 50.0
    assert load.percentile(values, 99) == 99.0
    assert load.percentile([3.0], 99) == 3.0
    assert math.isnan(load.percentile([], 50))


def test_request_bodies_are_realistic_and_greedy():
    bodies = bench.score_bodies(8)
    assert len(bodies) == 8
    lo, hi = bench.TEXT_CHARS
    for body in bodies:
        assert len(body["texts"]) == bench.TEXTS_PER_REQUEST
        assert all(lo <= len(t) <= hi for t in body["texts"])
    prompts = bench.completion_bodies(4, max_tokens=16)
    assert len({p["prompt"] for p in prompts}) == 4
    assert all(p["temperature"] == 0 and p["stream"] and p["max_tokens"] == 16 for p in prompts)


def test_serve_settings_fit_two_cpus():
    cfg = bench.serve_args(_parse([]), scorer="s", generator="g")
    reserved = cfg.ingress.num_cpus + cfg.scorer_deployment.num_cpus + cfg.generator_deployment.num_cpus
    assert reserved <= bench.RAY_CPUS and cfg.ingress.num_cpus == 0  # one app serves both models
    assert cfg.scorer_batch.max_batch_size >= 64 and cfg.generator_batch.max_batch_size >= 8
    assert cfg.log_requests is False


@pytest.mark.parametrize("flag", ["--requests", "--completion-requests", "--max-tokens", "--seconds"])
def test_rejects_non_positive_options(flag):
    with pytest.raises(ConfigError, match="must be > 0"):
        bench.run(_parse([flag, "0"]))


@pytest.mark.slow
def test_bench_serve_prints_rows_and_ratios_with_positive_figures():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.setdefault("OMP_NUM_THREADS", "1")
    levels = ",".join(map(str, LEVELS))
    argv = ["--concurrency", levels, "--completion-concurrency", levels, "--requests", "12"]
    argv += ["--completion-requests", "4", "--max-tokens", "8", "--seconds", "8"]
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab", "bench", "serve", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,  # two Ray starts and two app deployments; slower when the 2-core machine is busy
    )
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr[-3000:]}"
    assert f"os.cpu_count()={os.cpu_count()}" in out
    assert "generator: GPT-2 4 layers x 256" in out and "scorer: GRU embed 64 hidden 64" in out
    score, _, completions = out.partition("/v1/completions")
    assert "/v1/score" in score and completions, out

    expected = sorted((s, c) for s in SERVERS for c in LEVELS)
    score_rows, completion_rows = _rows(score), _rows(completions)
    assert sorted(score_rows) == expected, score
    assert sorted(completion_rows) == expected, completions
    for key, (ok, err, rps, texts_per_s, p50, p99) in score_rows.items():
        assert ok > 0 and err == 0, (key, score)
        assert all(math.isfinite(v) and v > 0 for v in (rps, texts_per_s, p50, p99)), (key, score)
        assert texts_per_s == pytest.approx(bench.TEXTS_PER_REQUEST * rps, rel=0.02), key
        assert p99 >= p50, key
    for key, (ok, err, tokens_per_s, ttft, p50, tokens_per_request) in completion_rows.items():
        assert ok > 0 and err == 0, (key, completions)
        assert all(math.isfinite(v) and v > 0 for v in (tokens_per_s, ttft, p50)), (key, completions)
        assert ttft <= p50, key
        assert tokens_per_request == pytest.approx(8, abs=0.05), key  # end-of-text is unreachable

    for path in SERVERS[1:]:
        assert _ratio(f"{path} / bare throughput at concurrency 4", score) > 0
        assert re.search(rf"{path} p99 at concurrency 4: [\d.]+ ms vs bare [\d.]+ ms", score)
        assert _ratio(f"{path} / bare aggregate tokens/s at concurrency 4", completions) > 0
    # the goals are the fast path's, each with a verdict
    assert re.search(
        r"fast path / bare throughput at concurrency 4: [\d.]+x \(goal >= 3.0x: (met|NOT met)", score
    )
    assert re.search(r"fast path p99 .* \(goal <= half of bare: (met|NOT met)", score)
    assert re.search(
        r"TTFT p50 of Serve fast path: concurrency 1 [\d.]+ ms, concurrency 4 [\d.]+ ms \(goal", out
    )
    for unit in ("request", "token"):
        cpu = re.search(
            rf"server CPU per {unit} \(all levels\): bare FastAPI ([\d.]+) ms; Serve default ([\d.]+) ms "
            rf"\((.+)\); Serve fast path ([\d.]+) ms \((.+)\)",
            out,
        )
        assert cpu and all(float(cpu.group(g)) > 0 for g in (1, 2, 4)), out
        assert "ProxyActor" in cpu.group(3) and "HAProxy" in cpu.group(5), out  # each path's own front
    memory = re.search(r"memory \(RSS after load\): (.+)", out)
    assert memory, out
    scorer_part = "Scorer" if bench.SCORER_PLACEMENT == "deployment" else "Ingress"  # where the scorer runs
    for label in (
        "score server",
        "completions server",
        scorer_part,
        "Generator",
        "Ingress",
        "ProxyActor",
        "HAProxy",
    ):
        assert re.search(rf"\b{label} \d+ MB", memory.group(1)), memory.group(1)
