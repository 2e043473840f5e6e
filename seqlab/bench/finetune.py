"""``seqlab bench finetune``: tokens/s of the Ray Train GPT-2 loop vs a bare transformers loop.

Same model (the from-scratch GPT-2 built from one seeded ``ModelSpec``), same tokenizer and corpus
blocks, same optimizer, schedule, micro-batch, accumulation and clipping, same torch thread count, in
one run:

* bare: a plain PyTorch loop over the packed blocks held in memory, in this process, run once before
  and once after the Ray run (the mean is the baseline, so drifting load on a shared machine hits both);
* Ray Train: :func:`seqlab.lm.train.fit` (``TorchTrainer``, Ray Data shard iteration, ``ray.train.report``
  every ``--report-every`` steps, like a real run).

Steady state only: both rates are tokens / wall time between the end of optimizer step ``--warmup`` and
the end of the last step, timed inside the loop, so Ray start-up, dataset materialization, worker
creation, the first steps and the final checkpoint are excluded. Overhead = 1 - ray / bare (goal <= 10%).
Rates are given per wall-clock second and per CPU second of the training process (all its threads:
for Ray, the worker's data prefetching and reporting threads too). On a machine shared with other
work, wall-clock rates swing with the neighbours' load; the CPU-time rates are the steadier comparison
(they leave out Ray's helper processes: raylet, the data split coordinator).
Also prints the achieved model FLOP/s (6 x parameters per token) and, on a GPU, the MFU.
"""

from __future__ import annotations

import argparse
import time

# Peak dense bf16 FLOP/s used for MFU on GPUs we know (no sparsity).
_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="corpus directory (default: the bundled corpus)")
    parser.add_argument("--steps", type=int, default=20, help="measured optimizer steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=4, help="optimizer steps excluded from timing")
    parser.add_argument("--report-every", type=int, default=5, help="Ray Train report interval (steps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (= CPUs of the Ray worker)")
    parser.add_argument("--use-gpu", action="store_true", help="both loops on one GPU, bf16 autocast")
    parser.add_argument("--gpt2-size", action="store_true", help="GPT-2 small shape (12x768, 1024 ctx)")
    parser.add_argument(
        "overrides", nargs="*", help="FinetuneJobConfig overrides, e.g. --model.n_layer=2 (after --)"
    )


def _config(args: argparse.Namespace):
    from seqlab.config import load_config
    from seqlab.lm.config import FinetuneJobConfig

    shape = ["--model.n_layer=12", "--model.n_embd=768", "--model.n_head=12", "--model.n_positions=1024"]
    overrides = [
        "--data.block_size=128",
        "--train.batch_size=8",
        "--train.grad_accum=1",
        f"--train.max_steps={args.warmup + args.steps}",
        f"--train.report_every={args.report_every}",
        "--train.checkpoint_every=1000000",
        f"--ray.cpus_per_worker={args.threads}",
        f"--ray.use_gpu={str(args.use_gpu).lower()}",
        "--ray.max_failures=0",
        *(shape if args.gpt2_size else []),
        *args.overrides,
    ]
    cfg = load_config(FinetuneJobConfig, None, overrides)
    if args.data:
        cfg.data.path = args.data
    return cfg


def bare_loop(spec, blocks, cfg, warmup: int, steps: int, device: str) -> tuple[float, float]:
    """Train ``warmup + steps`` optimizer steps in-process.

    Returns:
        tokens per wall-clock second and tokens per CPU second of this process, over the last ``steps``.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    from seqlab.lm.model import init_model
    from seqlab.lm.train import autocast_dtype, param_groups

    t = cfg.train
    model = init_model(spec).to(device).train()
    optimizer = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=cfg.effective_lr())
    total = warmup + steps
    scheduler = get_linear_schedule_with_warmup(optimizer, min(t.warmup_steps, total // 10), total)
    amp = autocast_dtype(t.mixed_precision, torch.device(device))
    data = torch.as_tensor(blocks)
    per_step = t.batch_size * t.grad_accum
    start, cpu_start, tokens = 0.0, 0.0, 0
    for step in range(total):
        if step == warmup:
            start, cpu_start, tokens = time.perf_counter(), time.process_time(), 0
        for micro in range(t.grad_accum):
            i = (step * per_step + micro * t.batch_size) % (len(data) - t.batch_size)
            ids = data[i : i + t.batch_size].to(device)  # (B, T)
            with torch.autocast(torch.device(device).type, dtype=amp, enabled=amp is not None):
                loss = model(input_ids=ids, labels=ids).loss
            (loss / t.grad_accum).backward()
            tokens += ids.numel()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start), tokens / (time.process_time() - cpu_start)


def _ray_steady_rate(history: list[dict], warmup: int, clock: str = "elapsed_s") -> float:
    """Tokens per second of ``clock`` (``elapsed_s`` wall, ``cpu_s`` worker CPU) between the first report
    at or after ``warmup`` steps and the last report."""
    first = next(h for h in history if h["step"] >= warmup)
    last = history[-1]
    return (last["tokens_seen"] - first["tokens_seen"]) / (last[clock] - first[clock])


def run(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    from seqlab.corpus_source import resolve_corpus_dir
    from seqlab.lm.data import pack_blocks, read_split_texts
    from seqlab.lm.finetune import prepare_model_and_tokenizer
    from seqlab.lm.model import count_parameters, init_model
    from seqlab.lm.train import fit
    from seqlab.ray_utils import ray_session

    if args.warmup % args.report_every:
        print("--warmup must be a multiple of --report-every (timing starts at a report)")
        return 2
    cfg = _config(args)
    corpus = resolve_corpus_dir(cfg.data.path)
    spec, tokenizer, _ = prepare_model_and_tokenizer(cfg, corpus)
    texts = read_split_texts(corpus, "train", cfg.data.text_column, cfg.data.max_docs)
    blocks = pack_blocks(tokenizer(texts)["input_ids"], cfg.data.block_size, tokenizer.eos_token_id)
    n_params = count_parameters(init_model(spec))
    device = "cuda" if args.use_gpu else "cpu"

    torch.set_num_threads(args.threads)
    bare_before = bare_loop(spec, blocks, cfg, args.warmup, args.steps, device)

    with ray_session():
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        with tempfile.TemporaryDirectory(prefix="seqlab-bench-") as storage:
            run_ = fit(cfg, spec, tokenizer, corpus, storage)
    bare_after = bare_loop(spec, blocks, cfg, args.warmup, args.steps, device)
    bare = [(a + b) / 2 for a, b in zip(bare_before, bare_after, strict=True)]  # [wall, cpu]
    ray_rate = [_ray_steady_rate(run_.history, args.warmup, c) for c in ("elapsed_s", "cpu_s")]

    t = cfg.train
    print(
        f"model: {n_params / 1e6:.2f}M parameters ({cfg.model.n_layer}x{cfg.model.n_embd}); "
        f"blocks of {cfg.data.block_size} tokens, micro-batch {t.batch_size}, grad_accum {t.grad_accum}; "
        f"{args.threads} torch thread(s) on {device}; {args.steps} measured steps after {args.warmup}"
    )
    print(f"{'loop':36} {'tokens/s (wall)':>16} {'tokens/CPU-s':>13} {'model TFLOP/s':>14}")
    rows = [
        ("bare loop, before the Ray run", bare_before),
        ("bare loop, after the Ray run", bare_after),
        ("bare loop, mean (baseline)", bare),
        ("Ray Train (TorchTrainer, 1 worker)", ray_rate),
    ]
    for name, (wall, cpu) in rows:
        print(f"{name:36} {wall:16.0f} {cpu:13.0f} {6 * n_params * wall / 1e12:14.4f}")
    windows = [f"{h['tokens_per_s']:.0f}" for h in run_.history if h["step"] > args.warmup]
    print(f"Ray Train per-report windows (tokens/s): {' '.join(windows)}")
    for label, i in (("wall clock", 0), ("CPU time of the training process", 1)):
        ratio = ray_rate[i] / bare[i]
        print(f"Ray Train / bare by {label}: {ratio:.3f} (overhead {100 * (1 - ratio):+.1f}%, goal <= 10%)")
    if args.use_gpu:
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in _PEAK_FLOPS.items() if k in name), None)
        if peak:
            mfu = 6 * n_params * ray_rate[0] / peak
            print(f"MFU on {name} (6N FLOPs/token vs {peak / 1e12:.0f} TFLOP/s dense bf16): {mfu:.1%}")
    return 0
