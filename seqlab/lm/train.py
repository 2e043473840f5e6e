"""Ray Train loop for GPT-2: corpus Parquet -> Ray Data blocks -> ``TorchTrainer`` workers -> checkpoints.

The driver (:func:`fit`) tokenizes and packs the corpus with Ray Data, then starts a ``TorchTrainer``
whose workers each run :func:`train_loop_per_worker` on their shard:

* AdamW (no decay on biases/LayerNorm), linear warmup then linear decay, gradient accumulation,
  gradient clipping, autocast (bf16, or fp16 with loss scaling) only on CUDA.
* every ``report_every`` optimizer steps: ``ray.train.report`` of loss/perplexity/lr/tokens-per-second;
  every ``checkpoint_every`` steps, each epoch end and at the end: a checkpoint with the model (Hugging
  Face format), optimizer, scheduler, grad scaler, step/epoch position and the metric history.
* resume: a worker restarted after a failure (``FailureConfig.max_failures``) or a rerun with the same
  ``storage_path``/``name`` gets the latest checkpoint from ``ray.train.get_checkpoint()`` and continues
  from its step (micro-batches already done in that epoch are skipped).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.lm.config import FinetuneJobConfig
from seqlab.lm.data import corpus_parquet_path, tokenize_and_pack
from seqlab.lm.model import ModelSpec, init_model, load_causal_lm

__all__ = ["TrainingRun", "block_datasets", "fit", "plan_steps", "train_loop_per_worker"]

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
HISTORY_FILE = "history.json"


@dataclass
class TrainingRun:
    """What a finished Ray Train run left behind.

    Attributes:
        history: rank 0's reports in step order, across failures and restarts.
        checkpoint: the latest ``ray.train.Checkpoint`` (holds ``model/``, the HF weights).
        metrics: the last report.
        path: the run directory on storage.
    """

    history: list[dict[str, Any]]
    checkpoint: Any
    metrics: dict[str, Any]
    path: str


def plan_steps(num_blocks: int, cfg: FinetuneJobConfig, world_size: int) -> dict[str, int]:
    """Optimizer steps per epoch, total steps and warmup steps for ``num_blocks`` training blocks.

    Raises:
        ValueError: the corpus is too small for even one optimizer step per epoch.
    """
    t = cfg.train
    micro_per_worker = num_blocks // world_size // t.batch_size
    steps_per_epoch = micro_per_worker // t.grad_accum
    if steps_per_epoch == 0:
        raise ValueError(
            f"{num_blocks} training blocks are too few for one optimizer step "
            f"({world_size} workers x batch_size {t.batch_size} x grad_accum {t.grad_accum}); "
            "use more documents or lower train.batch_size / train.grad_accum / data.block_size"
        )
    total = steps_per_epoch * t.epochs
    if t.max_steps is not None:
        total = min(total, t.max_steps)
    warmup = min(t.warmup_steps, int(t.warmup_fraction * total))
    return {"steps_per_epoch": steps_per_epoch, "total_steps": total, "warmup_steps": warmup}


def block_datasets(corpus_dir: str, tokenizer: Any, cfg: FinetuneJobConfig) -> dict[str, tuple[Any, int]]:
    """Ray Datasets of ``{"input_ids": (block_size,)}`` rows for the train and val splits, with counts.

    One Ray Data pass reads the Parquet, tokenizes and packs each split separately, and is materialized
    once (the driver needs the block count to plan the learning-rate schedule); the per-split datasets
    are cheap filters over it.
    """
    import ray.data

    column = cfg.data.text_column
    ds = ray.data.read_parquet(corpus_parquet_path(corpus_dir), columns=[column, "split"])
    if cfg.data.max_docs is not None:
        ds = ds.limit(cfg.data.max_docs)
    ds = ds.map_batches(
        tokenize_and_pack_splits,
        batch_size=256,  # documents per packing batch: at most one partial block dropped per split and batch
        batch_format="numpy",
        fn_kwargs={"tokenizer": tokenizer, "column": column, "block_size": cfg.data.block_size},
    ).materialize()
    counts = dict.fromkeys(("train", "val"), 0)
    for batch in ds.select_columns(["split"]).iter_batches(batch_size=None, batch_format="numpy"):
        for split in counts:
            counts[split] += int((batch["split"] == split).sum())
    return {
        split: (ds.filter(expr=f"split == '{split}'").select_columns(["input_ids"]), n)
        for split, n in counts.items()
    }


def tokenize_and_pack_splits(
    batch: dict[str, Any], tokenizer: Any, column: str, block_size: int
) -> dict[str, Any]:
    """``map_batches`` function: pack each split of a batch of documents on its own (no block mixes splits)."""
    import numpy as np

    ids, splits = [], []
    for split in ("train", "val"):
        docs = batch[column][batch["split"] == split]
        blocks = tokenize_and_pack({column: docs}, tokenizer, column, block_size)["input_ids"]
        ids.append(blocks)
        splits.extend([split] * len(blocks))
    return {"input_ids": np.concatenate(ids), "split": np.asarray(splits, dtype=object)}


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision only on CUDA; ``auto`` prefers bf16 (no loss scaling needed)."""
    if device.type != "cuda" or mode == "no":
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _unwrap(model: torch.nn.Module) -> Any:
    return model.module if hasattr(model, "module") else model


def _mean_loss(model: torch.nn.Module, shard: Any, cfg: dict[str, Any], device: torch.device) -> float | None:
    """Mean validation loss over this worker's shard, averaged over workers (None without data)."""
    if shard is None:
        return None
    model.eval()
    nll = torch.zeros(2, device=device)  # [sum of loss*tokens, tokens]
    with torch.no_grad():
        for batch in shard.iter_torch_batches(batch_size=cfg["batch_size"], dtypes=torch.long, device=device):
            ids = batch["input_ids"]  # (B, T)
            loss = model(input_ids=ids, labels=ids).loss
            n = ids.shape[0] * (ids.shape[1] - 1)
            nll += torch.stack([loss.float() * n, torch.tensor(float(n), device=device)])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(nll)
    model.train()
    return float(nll[0] / nll[1]) if nll[1] > 0 else None


def _quiet_report_logs() -> None:
    """Ray Train V2 logs every report as a raw ``TrainingReport(...)`` dict at INFO, under a logger named
    after its file; :func:`progress_line` is the readable line, so raise that logger to WARNING."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray version: nothing to quiet
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def progress_line(metrics: dict[str, Any], total_steps: int, resumed_from: int = 0) -> str:
    """One readable line per report window: step, epoch, loss, perplexity, tokens/s and ETA."""
    step, elapsed = metrics["step"], metrics.get("elapsed_s", 0.0)
    done = max(step - resumed_from, 1)
    eta = elapsed / done * max(total_steps - step, 0)
    return (
        f"step {step}/{total_steps}  epoch {metrics.get('epoch', 0):.2f}  loss {metrics['loss']:.3f}  "
        f"ppl {metrics.get('perplexity', float('nan')):.1f}  {metrics.get('tokens_per_s', 0):.0f} tokens/s  "
        f"ETA {int(eta // 60)}m{int(eta % 60):02d}s"
    )


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: build or restore the model, train on its shard, report and checkpoint.

    ``config`` keys: model_spec, lr, weight_decay, batch_size, grad_accum, grad_clip, epochs,
    steps_per_epoch, total_steps, warmup_steps, report_every, checkpoint_every, shuffle_buffer, seed,
    mixed_precision, torch_threads, fail_at_step (tests: raise once at that step).
    """
    import ray.train
    import ray.train.torch
    from transformers import get_linear_schedule_with_warmup

    torch.set_num_threads(config["torch_threads"])
    _quiet_report_logs()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    state: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            model = load_causal_lm(str(Path(ckpt_dir, "model")))
            state = torch.load(Path(ckpt_dir, STATE_FILE), map_location="cpu", weights_only=False)
            history = json.loads(Path(ckpt_dir, HISTORY_FILE).read_text(encoding="utf-8"))
    else:
        model = init_model(config["model_spec"])
    model = ray.train.torch.prepare_model(model)  # to device; DDP when world > 1
    model.train()

    optimizer = torch.optim.AdamW(_param_groups(model, config["weight_decay"]), lr=config["lr"])
    scheduler = get_linear_schedule_with_warmup(optimizer, config["warmup_steps"], config["total_steps"])
    amp_dtype = _autocast_dtype(config["mixed_precision"], device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    step, epoch, skip_micro = 0, 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, skip_micro = state["step"], state["epoch"], state["micro_in_epoch"]
    resumed_from = step
    total, accum = config["total_steps"], config["grad_accum"]
    micro_per_epoch = config["steps_per_epoch"] * accum
    tokens_seen = state["tokens_seen"] if state else 0

    def save_and_report(metrics: dict[str, Any], epoch: int, micro: int, with_checkpoint: bool) -> None:
        history.append(metrics)
        if rank == 0:  # not print(): Train V2 patches it to log *and* echo, which doubles every line
            sys.stdout.write(progress_line(metrics, total, resumed_from) + "\n")
            sys.stdout.flush()
        if not with_checkpoint:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            if rank == 0:  # one copy of the (replicated) state is enough
                _unwrap(model).save_pretrained(Path(tmp, "model"))
                torch.save(
                    {
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "step": step,
                        "epoch": epoch,
                        "micro_in_epoch": micro,
                        "tokens_seen": tokens_seen,
                    },
                    Path(tmp, STATE_FILE),
                )
                Path(tmp, HISTORY_FILE).write_text(json.dumps(history), encoding="utf-8")
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
            else:
                ray.train.report(metrics)

    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val") if config.get("has_val") else None
    window_loss, window_micro, window_tokens = torch.zeros((), device=device), 0, 0
    window_start = time.perf_counter()
    started, cpu_started = time.perf_counter(), time.process_time()
    while epoch < config["epochs"] and step < total:
        micro = 0
        batches = train_shard.iter_torch_batches(
            batch_size=config["batch_size"],
            dtypes=torch.long,
            device=device,
            drop_last=True,
            local_shuffle_buffer_size=config["shuffle_buffer"] or None,
            local_shuffle_seed=config["seed"] + epoch if config["shuffle_buffer"] else None,
        )
        for batch in batches:
            if micro >= micro_per_epoch or step >= total:
                break
            if micro < skip_micro:  # resuming mid-epoch: these micro-batches were already trained on
                micro += 1
                continue
            ids = batch["input_ids"]  # (B, T)
            boundary = (micro + 1) % accum == 0
            no_sync = model.no_sync() if world > 1 and not boundary else contextlib.nullcontext()
            with no_sync, torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = model(input_ids=ids, labels=ids).loss  # mean over B*(T-1) tokens
            scaler.scale(loss / accum).backward()
            window_loss += loss.detach().float()  # stays on the device: no sync per micro-batch
            window_micro += 1
            window_tokens += ids.numel() * world
            micro += 1
            if not boundary:
                continue
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            tokens_seen += ids.numel() * accum * world
            if config.get("fail_at_step") == step and state is None:  # first attempt only
                raise RuntimeError(f"injected worker failure at step {step} (testing FailureConfig)")
            epoch_done = micro >= micro_per_epoch
            last = step >= total
            do_ckpt = step % config["checkpoint_every"] == 0 or epoch_done or last
            if step % config["report_every"] == 0 or do_ckpt:
                mean_loss = float(window_loss) / max(window_micro, 1)  # syncs the GPU before timing
                now = time.perf_counter()
                metrics = {
                    "step": step,
                    "epoch": epoch + (micro / micro_per_epoch),
                    "loss": mean_loss,
                    "perplexity": math.exp(min(mean_loss, 50.0)),
                    "lr": scheduler.get_last_lr()[0],
                    "tokens_seen": tokens_seen,
                    "tokens_per_s": window_tokens / max(now - window_start, 1e-9),
                    "window_s": now - window_start,
                    "elapsed_s": now - started,
                    "cpu_s": time.process_time() - cpu_started,  # this worker process, all its threads
                    "resumed_from_step": resumed_from,
                }
                if epoch_done or last:
                    val_loss = _mean_loss(model, val_shard, config, device)
                    if val_loss is not None:
                        metrics.update(val_loss=val_loss, val_perplexity=math.exp(min(val_loss, 50.0)))
                next_epoch, next_micro = (epoch + 1, 0) if epoch_done else (epoch, micro)
                save_and_report(metrics, next_epoch, next_micro, with_checkpoint=do_ckpt)
                window_loss, window_micro, window_tokens = torch.zeros((), device=device), 0, 0
                window_start = time.perf_counter()
        skip_micro = 0
        epoch += 1


def _trainer(
    cfg: FinetuneJobConfig, loop_config: dict[str, Any], datasets: dict[str, Any], storage_path: str
) -> Any:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    r = cfg.ray
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=r.num_workers,
            use_gpu=r.use_gpu,
            resources_per_worker={"CPU": r.cpus_per_worker, **({"GPU": 1} if r.use_gpu else {})},
            placement_strategy=r.placement_strategy,
        ),
        run_config=RunConfig(
            name=r.name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=r.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=r.num_to_keep),
        ),
        datasets=datasets,
    )


def fit(
    cfg: FinetuneJobConfig,
    spec: ModelSpec,
    tokenizer: Any,
    corpus_dir: str,
    storage_path: str,
    fail_at_step: int | None = None,
) -> TrainingRun:
    """Train with Ray Train (Ray must be initialized) and return the run's history and last checkpoint.

    Args:
        cfg: the resolved job config (``cfg.resolved()``).
        spec: how workers build the initial model (ignored when resuming from a checkpoint).
        tokenizer: tokenizes the corpus (shipped to Ray Data tasks).
        corpus_dir: corpus directory with ``corpus/`` Parquet.
        storage_path: Ray Train storage (local dir or URI); same path + ``cfg.ray.name`` resumes.
        fail_at_step: testing only: every worker raises once at this step, to exercise recovery.

    Raises:
        RuntimeError: training failed after ``cfg.ray.max_failures`` restarts.
    """
    from seqlab.interrupts import own_signal_handlers

    data = block_datasets(corpus_dir, tokenizer, cfg)
    (train_ds, num_blocks), (val_ds, num_val) = data["train"], data["val"]
    plan = plan_steps(num_blocks, cfg, cfg.ray.num_workers)
    log.info(
        "train: %d blocks of %d tokens, val: %d blocks; plan %s",
        num_blocks,
        cfg.data.block_size,
        num_val,
        plan,
    )
    datasets = {"train": train_ds}
    has_val = num_val >= cfg.ray.num_workers
    if has_val:
        datasets["val"] = val_ds
    t = cfg.train
    loop_config = {
        "model_spec": spec,
        "lr": cfg.effective_lr(),
        "weight_decay": t.weight_decay,
        "batch_size": t.batch_size,
        "grad_accum": t.grad_accum,
        "grad_clip": t.grad_clip,
        "epochs": t.epochs,
        **plan,
        "report_every": t.report_every,
        "checkpoint_every": t.checkpoint_every,
        "shuffle_buffer": t.shuffle_buffer,
        "seed": t.seed,
        "mixed_precision": t.mixed_precision,
        "torch_threads": cfg.ray.cpus_per_worker,
        "has_val": has_val,
        "fail_at_step": fail_at_step,
    }
    trainer = _trainer(cfg, loop_config, datasets, storage_path)
    with own_signal_handlers():  # Ray Train leaves its Ctrl+C handler behind after fit()
        try:
            result = trainer.fit()
        except SystemExit:  # that handler aborts the run and calls sys.exit() from inside fit()
            raise KeyboardInterrupt from None
    if result.error is not None:
        raise RuntimeError(f"Ray Train run failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise RuntimeError("Ray Train run finished without a checkpoint")
    with result.checkpoint.as_directory() as ckpt_dir:
        history = json.loads(Path(ckpt_dir, HISTORY_FILE).read_text(encoding="utf-8"))
    return TrainingRun(history, result.checkpoint, dict(result.metrics or {}), str(result.path))
