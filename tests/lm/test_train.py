"""Ray Train fine-tuning: step planning, a tiny GPT-2 loaded by path trained on the session Ray, recovery
from a worker failure, SIGKILL/Ctrl+C of the driver and its re-run, export + report, and (GPU only) mixed precision."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqlab.config import load_config
from seqlab.lm.config import FinetuneJobConfig
from seqlab.lm.train import autocast_dtype, plan_steps

TINY = [
    "--data.block_size=32",
    "--train.batch_size=4",
    "--train.grad_accum=2",
    "--train.lr=1e-2",
    "--train.warmup_steps=2",
    "--train.report_every=2",
    "--train.checkpoint_every=5",
    "--train.max_steps=10",
    "--ray.max_failures=1",
    "--eval.num_prompts=3",
    "--eval.prompt_tokens=8",
    "--eval.continuation_tokens=8",
    "--eval.strategies=[greedy,default]",
    "--eval.max_eval_blocks=24",
]


def test_plan_steps_scales_warmup_and_caps_steps():
    cfg = load_config(FinetuneJobConfig, None, ["--train.batch_size=4", "--train.grad_accum=2"])
    plan = plan_steps(1000, cfg, world_size=2)  # 1000 // 2 // 4 = 125 micro-batches -> 62 steps/epoch
    assert plan == {"steps_per_epoch": 62, "total_steps": 186, "warmup_steps": 18}
    cfg.train.max_steps = 50
    assert plan_steps(1000, cfg, 2)["total_steps"] == 50
    with pytest.raises(ValueError, match="too few"):
        plan_steps(7, cfg, 1)


def test_mixed_precision_only_on_cuda():
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) is None
    assert autocast_dtype("fp16", torch.device("cuda")) is torch.float16
    assert autocast_dtype("no", torch.device("cuda")) is None


def _history(out) -> list[dict]:
    return json.loads((out / "report" / "metrics.json").read_text())["history"]


@pytest.fixture(scope="module")
def finetuned(ray_session, corpus_dir, tiny_gpt2_dir, tmp_path_factory):
    """One Ray Train run of the tiny GPT-2 loaded by path, with every worker failing once at step 7."""
    from seqlab.lm.finetune import run_finetune

    out = tmp_path_factory.mktemp("finetune") / "run"
    cfg = load_config(FinetuneJobConfig, None, TINY)
    cfg.model.base_model = str(tiny_gpt2_dir)  # the from_pretrained code path, by local directory
    cfg.data.path = str(corpus_dir)
    cfg.out = str(out)
    return out, run_finetune(cfg, fail_at_step=7)


@pytest.mark.slow
def test_finetune_by_path_trains_and_survives_a_worker_failure(finetuned, tiny_gpt2_dir):
    out, manifest = finetuned
    history = _history(out)
    steps = [h["step"] for h in history]
    assert steps == [2, 4, 5, 6, 8, 10]
    # The failure at step 7 restarted the worker group from the step-5 checkpoint; steps continued.
    assert [h["resumed_from_step"] for h in history] == [0, 0, 0, 5, 5, 5]
    assert history[-1]["loss"] < history[0]["loss"] - 0.5, "loss should fall"
    m = manifest["metrics"]
    assert m["test_perplexity"] < 0.5 * m["test_perplexity_untrained"]
    assert manifest["model_source"] == "pretrained" and manifest["base_model"] == str(tiny_gpt2_dir)
    assert manifest["inputs"]["corpus"]["stage"] == "scrape"
    assert set(m["decoding"]) == {"greedy", "default", "reference"}
    for name in ("config.json", "tokenizer.json", "manifest.json"):
        assert (out / "model" / name).is_file()
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert "| trained |" in report and "| greedy |" in report
    assert (out / "report" / "training_curve.png").stat().st_size > 1000


def _checkpoints(out) -> int:
    return len(list((out / "ray_results" / "finetune").glob("checkpoint_*")))


def _finetune_process(flags: list[str], ray_address: str):
    """``seqlab finetune`` as a user runs it, joined to the session Ray, in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "seqlab", "finetune", *flags],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "RAY_ADDRESS": ray_address},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, not a bg job
    )


@pytest.mark.slow
def test_killed_then_interrupted_finetune_resumes_to_the_uninterrupted_steps(
    finetuned, ray_session, corpus_dir, tiny_gpt2_dir, tmp_path, signal_when
):
    """SIGKILL at a random point, Ctrl+C on the re-run, then a last re-run: the step history is the one an
    uninterrupted run has (each step once), and model/ appears only at the end."""
    from seqlab.cli import main

    seed = random.randrange(10_000)
    rng = random.Random(seed)
    why = f"(random kill points from seed {seed})"
    address = ray_session.get_runtime_context().gcs_address
    out = tmp_path / "run"
    flags = ["--data", str(corpus_dir), "--base-model", str(tiny_gpt2_dir), "--out", str(out), *TINY]

    # 1. SIGKILL after 0 or 1 checkpoints (steps 5 and 10 checkpoint), a random moment later.
    kill_after, delay = rng.randint(0, 1), rng.uniform(0, 1.5)
    reached: list[float] = []

    def ready() -> bool:
        if not reached and _checkpoints(out) >= kill_after:
            reached.append(time.monotonic())
        return bool(reached) and time.monotonic() - reached[0] >= delay

    rc, err = signal_when(_finetune_process(flags, address), ready, signal.SIGKILL)
    assert rc == -signal.SIGKILL, f"{why} it finished before the kill: rc {rc}\n{err[-3000:]}"
    assert not (out / "model").exists(), why

    # 2. The same command again resumes; Ctrl+C at its next checkpoint exits 130 and says what to do.
    before = _checkpoints(out)
    rc, err = signal_when(
        _finetune_process(flags, address), lambda: _checkpoints(out) > before, signal.SIGINT
    )
    if rc != 0:  # it may also finish first
        assert rc == 130, f"{why} rc {rc}\n{err[-6000:]}"
        assert "fine-tuning interrupted" in err and "run the same command again" in err, err[-3000:]
        # Ray Data's driver threads may print their own traceback as Ray shuts down; ours must not appear,
        # and the last line is the one-line message.
        assert "seqlab/" not in "".join(
            ln for ln in err.splitlines(True) if ln.lstrip().startswith("File ")
        ), err[-3000:]
        assert err.strip().splitlines()[-1].startswith("seqlab finetune: fine-tuning interrupted"), err[
            -3000:
        ]
        assert main(["finetune", *flags]) == 0  # 3. the last re-run, here

    uninterrupted = [h["step"] for h in _history(finetuned[0])]  # the same steps; that run recovered too
    history = _history(out)
    assert [h["step"] for h in history] == uninterrupted, why
    assert history[-1]["loss"] < history[0]["loss"] - 0.5, why
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == uninterrupted[-1], why
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "staging left behind"


@pytest.mark.slow
@pytest.mark.gpu
def test_gpu_training_with_mixed_precision(ray_session, corpus_dir, tiny_gpt2_dir, tmp_path):
    from seqlab.lm.finetune import prepare_model_and_tokenizer
    from seqlab.lm.train import fit

    cfg = load_config(FinetuneJobConfig, None, [*TINY, "--ray.use_gpu=true", "--train.mixed_precision=auto"])
    cfg.model.base_model = str(tiny_gpt2_dir)
    spec, tokenizer, _ = prepare_model_and_tokenizer(cfg, str(corpus_dir))
    run = fit(cfg, spec, tokenizer, str(corpus_dir), str(tmp_path / "ray"))
    assert run.history[-1]["step"] == 10
    assert run.history[-1]["loss"] < run.history[0]["loss"]
