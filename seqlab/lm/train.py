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

from seqlab.corpus import parquet_path
from seqlab.lm.config import FinetuneJobConfig, LMTrainConfig
from seqlab.lm.data import tokenize_and_pack_splits
from seqlab.lm.model import ModelSpec, init_model, load_causal_lm

__all__ = ["TrainingRun", "block_datasets", "fit", "plan_steps", "train_loop_per_worker"]

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
HISTORY_FILE = "history.json"
# Position part of STATE_FILE: optimizer steps done, epoch, micro-batches done in it, tokens trained on.
_FRESH_START = {"step": 0, "epoch": 0, "micro_in_epoch": 0, "tokens_seen": 0}


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
    ds = ray.data.read_parquet(parquet_path(corpus_dir), columns=[column, "split"])
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


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision only on CUDA; ``auto`` prefers bf16 (no loss scaling needed)."""
    if device.type != "cuda" or mode == "no":
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _unwrap(model: torch.nn.Module) -> Any:
    return model.module if hasattr(model, "module") else model


def _mean_loss(model: torch.nn.Module, shard: Any, batch_size: int, device: torch.device) -> float | None:
    """Mean validation loss over this worker's shard, averaged over workers (None without data)."""
    if shard is None:
        return None
    model.eval()
    nll = torch.zeros(2, device=device)  # [sum of loss*tokens, tokens]
    with torch.no_grad():
        for batch in shard.iter_torch_batches(batch_size=batch_size, dtypes=torch.long, device=device):
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


def _restore(
    checkpoint: Any, spec: ModelSpec
) -> tuple[torch.nn.Module, dict[str, Any] | None, list[dict[str, Any]]]:
    """Where a worker starts: the checkpoint's model, training state and history, or a fresh model.

    Returns:
        ``(model, state, history)``; ``state`` is the :data:`STATE_FILE` dict, None on a fresh start.
    """
    if checkpoint is None:
        return init_model(spec), None, []
    with checkpoint.as_directory() as ckpt_dir:
        model = load_causal_lm(str(Path(ckpt_dir, "model")))
        state = torch.load(Path(ckpt_dir, STATE_FILE), map_location="cpu", weights_only=False)
        history = json.loads(Path(ckpt_dir, HISTORY_FILE).read_text(encoding="utf-8"))
    return model, state, history


class _Optimizer:
    """AdamW, the linear warmup/decay schedule and the fp16 grad scaler of one (possibly DDP) model.

    :meth:`backward` trains one micro-batch, :meth:`step` ends an accumulation window with one optimizer step.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: FinetuneJobConfig,
        plan: dict[str, int],
        device: torch.device,
        distributed: bool,
        state: dict[str, Any] | None,
    ) -> None:
        from transformers import get_linear_schedule_with_warmup

        t = cfg.train
        self.model, self.device, self.distributed = model, device, distributed
        self.grad_accum, self.grad_clip = t.grad_accum, t.grad_clip
        self.optimizer = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=cfg.effective_lr())
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, plan["warmup_steps"], plan["total_steps"]
        )
        self.amp_dtype = autocast_dtype(t.mixed_precision, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])

    def backward(self, ids: torch.Tensor, boundary: bool) -> torch.Tensor:
        """Forward (autocast) and scaled backward of the micro-batch ``ids`` (B, T); returns its mean loss.

        Off the accumulation ``boundary``, DDP's gradient all-reduce is skipped (``no_sync``).
        """
        no_sync = self.model.no_sync() if self.distributed and not boundary else contextlib.nullcontext()
        amp = self.amp_dtype
        with no_sync, torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            loss = self.model(input_ids=ids, labels=ids).loss  # mean over B*(T-1) tokens
        self.scaler.scale(loss / self.grad_accum).backward()
        return loss.detach()

    def step(self) -> None:
        """One optimizer step over the accumulated gradients: unscale, clip, step, zero, advance the lr."""
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }


class _MetricsWindow:
    """Loss, micro-batches and tokens since the last report, and the run clocks every report carries."""

    def __init__(self, device: torch.device, resumed_from: int) -> None:
        self.device, self.resumed_from = device, resumed_from
        self.reset()
        self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)  # sum of micro-batch losses
        self.micro, self.tokens = 0, 0
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, tokens: int) -> None:
        self.loss += loss.float()  # stays on the device: no sync per micro-batch
        self.micro += 1
        self.tokens += tokens

    def metrics(self, step: int, epoch: float, lr: float, tokens_seen: int) -> dict[str, Any]:
        """The report of this window (call :meth:`reset` once it is reported)."""
        mean_loss = float(self.loss) / max(self.micro, 1)  # syncs the GPU before timing
        now = time.perf_counter()
        return {
            "step": step,
            "epoch": epoch,
            "loss": mean_loss,
            "perplexity": math.exp(min(mean_loss, 50.0)),
            "lr": lr,
            "tokens_seen": tokens_seen,
            "tokens_per_s": self.tokens / max(now - self.start, 1e-9),
            "window_s": now - self.start,
            "elapsed_s": now - self.started,
            "cpu_s": time.process_time() - self.cpu_started,  # this worker process, all its threads
            "resumed_from_step": self.resumed_from,
        }


def _epoch_batches(shard: Any, t: LMTrainConfig, epoch: int, device: torch.device) -> Any:
    """This worker's micro-batches ``{"input_ids": (B, T)}`` for one epoch, shuffled with an epoch seed."""
    return shard.iter_torch_batches(
        batch_size=t.batch_size,
        dtypes=torch.long,
        device=device,
        drop_last=True,
        local_shuffle_buffer_size=t.shuffle_buffer or None,
        local_shuffle_seed=t.seed + epoch if t.shuffle_buffer else None,
    )


def _echo_progress(line: str) -> None:
    """Rank 0's progress line on stdout (not print(): Train V2 patches it to log *and* echo, which
    doubles every line)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _save_checkpoint(
    metrics: dict[str, Any],
    rank: int,
    model: torch.nn.Module,
    opt: _Optimizer,
    position: dict[str, int],
    history: list[dict[str, Any]],
) -> None:
    """``ray.train.report`` of ``metrics`` with a checkpoint, written by rank 0 (one copy of the replicated
    state is enough): ``model/`` (Hugging Face format), :data:`STATE_FILE` (optimizer, scheduler, scaler
    and the ``position`` to resume at) and :data:`HISTORY_FILE`."""
    import ray.train

    with tempfile.TemporaryDirectory() as tmp:
        if rank != 0:
            ray.train.report(metrics)
            return
        _unwrap(model).save_pretrained(Path(tmp, "model"))
        torch.save({**opt.state_dict(), **position}, Path(tmp, STATE_FILE))
        Path(tmp, HISTORY_FILE).write_text(json.dumps(history), encoding="utf-8")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: build or restore the model, train on its shard, report and checkpoint.

    ``config`` (built by :func:`fit`): ``job`` (the ``FinetuneJobConfig`` as ``model_dump(mode="json")``,
    validated again here), ``plan`` (:func:`plan_steps`), ``model_spec``, ``has_val`` (a ``val`` shard
    exists) and ``fail_at_step`` (tests: raise once at that step).
    """
    import ray.train
    import ray.train.torch

    cfg = FinetuneJobConfig.model_validate(config["job"])
    t, plan = cfg.train, config["plan"]
    torch.set_num_threads(cfg.ray.cpus_per_worker)
    _quiet_report_logs()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    model, state, history = _restore(ray.train.get_checkpoint(), config["model_spec"])
    model = ray.train.torch.prepare_model(model)  # to device; DDP when world > 1
    model.train()
    opt = _Optimizer(model, cfg, plan, device, distributed=world > 1, state=state)
    at = state or _FRESH_START  # the checkpoint's position, or the very start
    step, epoch, skip_micro, tokens_seen = at["step"], at["epoch"], at["micro_in_epoch"], at["tokens_seen"]
    total, accum = plan["total_steps"], t.grad_accum
    micro_per_epoch = plan["steps_per_epoch"] * accum

    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val") if config.get("has_val") else None
    window = _MetricsWindow(device, resumed_from=step)
    while epoch < t.epochs and step < total:
        micro = 0
        for batch in _epoch_batches(train_shard, t, epoch, device):
            if micro >= micro_per_epoch or step >= total:
                break
            if micro < skip_micro:  # resuming mid-epoch: these micro-batches were already trained on
                micro += 1
                continue
            ids = batch["input_ids"]  # (B, T)
            boundary = (micro + 1) % accum == 0
            window.add(opt.backward(ids, boundary), ids.numel() * world)
            micro += 1
            if not boundary:
                continue
            opt.step()
            step += 1
            tokens_seen += ids.numel() * accum * world
            if config.get("fail_at_step") == step and state is None:  # first attempt only
                raise RuntimeError(f"injected worker failure at step {step} (testing FailureConfig)")
            epoch_done, last = micro >= micro_per_epoch, step >= total
            with_checkpoint = step % t.checkpoint_every == 0 or epoch_done or last
            if step % t.report_every != 0 and not with_checkpoint:
                continue
            metrics = window.metrics(step, epoch + micro / micro_per_epoch, opt.lr, tokens_seen)
            if epoch_done or last:
                val_loss = _mean_loss(model, val_shard, t.batch_size, device)
                if val_loss is not None:
                    metrics.update(val_loss=val_loss, val_perplexity=math.exp(min(val_loss, 50.0)))
            history.append(metrics)
            if rank == 0:
                _echo_progress(progress_line(metrics, total, window.resumed_from))
            if with_checkpoint:
                next_epoch, next_micro = (epoch + 1, 0) if epoch_done else (epoch, micro)
                position = {"step": step, "epoch": next_epoch, "micro_in_epoch": next_micro}
                _save_checkpoint(metrics, rank, model, opt, {**position, "tokens_seen": tokens_seen}, history)
            else:
                ray.train.report(metrics)
            window.reset()
        skip_micro = 0
        epoch += 1


def _trainer(
    cfg: FinetuneJobConfig, loop_config: dict[str, Any], datasets: dict[str, Any], storage_path: str
) -> Any:
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from seqlab.logs import ray_train_log_level

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
            logging_config=LoggingConfig(log_level=ray_train_log_level()),
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
        cfg: the job config as it runs (``cfg.smoke()``).
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
    loop_config = {
        "job": cfg.model_dump(mode="json"),  # each worker validates it again (FinetuneJobConfig)
        "plan": plan,
        "model_spec": spec,
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
