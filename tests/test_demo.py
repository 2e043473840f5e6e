"""The demo end to end, as README command 1 runs it (its own process and local Ray), at a small size.

This is the integration test of the whole product: local site -> scrape -> tune -> finetune -> generate
-> serve with real HTTP exchanges. The sizes are cut so it fits CI; the demo's defaults are what the
README's command runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

PROMPT = "يعتمد الذكاء الاصطناعي على"


def test_demo_runs_every_stage_and_says_what_it_did(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [
        sys.executable,
        "-m",
        "seqlab",
        "demo",
        "--out",
        str(out),
        "--n_docs=150",
        "--tune.search.num_samples=1",
        "--tune.train.max_epochs=2",
        "--tune.search.grace_period=1",
        "--finetune.smoke_test=true",
        f"--prompts=[{PROMPT}]",
        "--decoding.max_new_tokens=8",
        "--serve_port=0",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-5000:]
    stdout = done.stdout
    for stage in ("1/5 scrape", "2/5 tune", "3/5 finetune", "4/5 generate", "5/5 serve"):
        assert stage in stdout, stage
    assert "Full size: seqlab tune --config jobs/tune.yaml" in stdout
    assert "Full size: seqlab finetune --config jobs/finetune.yaml" in stdout
    assert "TF-IDF+ridge" in stdout and "label-noise floor" in stdout and "untrained" in stdout
    assert f"] {PROMPT} " in stdout  # the prompt, a space, then its continuation
    assert "distinct-2 over these continuations" in stdout
    for route in ("/v1/score", "/v1/generate", "/v1/completions"):
        assert "$ curl -s http://127.0.0.1:" in stdout and f"{route} -H" in stdout, route
    assert "artifacts:" in stdout and str(out / "tune" / "best") in stdout
    assert "TrainingReport(" not in printed  # progress is one readable line per window
    # Readable in a log file: no escape codes, none of the libraries' chatter (seqlab.logs), few lines.
    assert "\x1b" not in printed
    for noise in (
        "Checkpoint successfully created",
        "State API may be temporarily unavailable",
        "Execution plan of Dataset",
        "Writing model shards",
        "Token authentication is enabled",
        "attention_mask",
        "Traceback",
    ):
        assert noise not in printed, noise
    assert len(printed.splitlines()) <= 150, printed
    assert "step " in printed and "tokens/s" in printed and "ETA" in printed

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["steps"]) == {"scrape", "tune", "finetune", "generate", "serve"}
    exchanges = summary["steps"]["serve"]["exchanges"]
    assert [e["route"] for e in exchanges] == ["/v1/score", "/v1/generate", "/v1/completions"]
    assert len(exchanges[0]["response"]["scores"]) == 2
    scores = [c["score"] for c in exchanges[1]["response"]["candidates"]]
    assert scores == sorted(scores, reverse=True)  # reranked, best first
    assert exchanges[2]["response"]["object"] == "text_completion"
    scrape_manifest = json.loads((out / "scrape" / "manifest.json").read_text(encoding="utf-8"))
    assert scrape_manifest["metrics"]["noise_floor_rmse"] > 0  # recorded by run_scrape itself
    tune_manifest = json.loads((out / "tune" / "manifest.json").read_text(encoding="utf-8"))
    assert tune_manifest["config"]["data"]["path"] == str(out / "scrape")
