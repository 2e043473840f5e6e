"""One training run of an :class:`RNNRegressor`: the loop every Tune trial runs, and a plain call too.

MSE on the 0–10 score, Adam or AdamW (+ weight decay), gradient-norm clipping, length-bucketed batches,
validation every epoch with early stopping on validation loss, the best weights kept, and metrics
(MAE/RMSE/R²) of the best model. Reproducible for a seed (bitwise on CPU; cuDNN RNN kernels may differ in
the last bits on GPU). CPU or GPU without code changes (``device="auto"``).

Checkpointing is the caller's business: ``on_epoch(metrics, state)`` gets a :class:`TrainState` after every
epoch that :meth:`TrainState.save` writes to a directory and :meth:`TrainState.load` reads back, and
``train_regressor(..., resume=state)`` continues from it (Tune trials do exactly this).

Example::

    result = train_regressor(RNNConfig(vocab_size=data.vocab_size, cell="lstm"), TrainConfig(), data)
    result.metrics["test_rmse"]
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seqlab.models.rnn import RNNConfig, RNNRegressor
from seqlab.train.config import TrainConfig
from seqlab.train.data import EncodedCorpus, EncodedSplit, bucketed_batches, collate
from seqlab.train.metrics import regression_metrics

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "evaluate",
    "make_optimizer",
    "predict_split",
    "resolve_device",
    "seed_everything",
    "train_one_epoch",
    "train_regressor",
]

log = logging.getLogger(__name__)
STATE_FILE = "train_state.pt"


@dataclass
class TrainState:
    """Everything needed to continue a run after ``epoch`` completed epochs."""

    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    best_model_state: dict[str, torch.Tensor]
    best_val_loss: float
    best_epoch: int
    bad_epochs: int
    history: list[dict[str, float]]
    torch_rng: torch.Tensor | None = None
    scheduler_state: dict[str, Any] | None = None

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/train_state.pt``; returns its path."""
        path = Path(directory, STATE_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.__dict__, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> TrainState:
        """Read a state written by :meth:`save` (tensors land on CPU)."""
        return cls(**torch.load(Path(directory, STATE_FILE), map_location="cpu", weights_only=True))


@dataclass
class TrainResult:
    """Outcome of :func:`train_regressor`. ``model`` holds the best (lowest val loss) weights."""

    model: RNNRegressor
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    state: TrainState | None = None


def resolve_device(preference: str | None = "auto") -> torch.device:
    """``"auto"`` -> the (first visible) CUDA device when there is one, else CPU.

    Inside a Ray trial with a fractional GPU, Ray sets CUDA_VISIBLE_DEVICES, so ``cuda:0`` is that GPU.

    Raises:
        ValueError: not a device string (``banana``), or a CUDA/MPS device this machine or build lacks.
    """
    if preference in ("auto", None, ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device {preference!r} is not a device: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = (
                "this PyTorch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            )
            raise ValueError(f"device {preference!r} requested but CUDA is not available ({build})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {preference!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {preference!r} requested but MPS is not available")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW with ``cfg.lr`` and ``cfg.weight_decay``."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_one_epoch(
    model: RNNRegressor,
    split: EncodedSplit,
    batches: list[np.ndarray],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    grad_clip: float = 1.0,
    pack: bool = False,
    pad_to: int | None = None,
) -> float:
    """One pass over ``batches`` of ``split``; returns the mean training MSE (one host sync, at the end)."""
    model.train()
    total = torch.zeros((), device=device)
    seen = 0
    for idx in batches:
        tokens, lengths, target = collate(split, idx, pad_to=pad_to)  # (b, T), (b,), (b,)
        tokens = tokens.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        pred = model(tokens, lengths, pack=pack)  # (b,)
        loss = F.mse_loss(pred, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total += loss.detach() * len(idx)
        seen += len(idx)
    return float(total.item()) / max(seen, 1)


@torch.no_grad()
def predict_split(
    model: RNNRegressor, split: EncodedSplit, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """(N,) predictions for every document of ``split``, in order (length-sorted batches internally)."""
    model.eval()
    order = np.argsort(split.lengths, kind="stable")
    out = np.empty(len(split), dtype=np.float64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        tokens, lengths, _ = collate(split, idx)
        out[idx] = model(tokens.to(device), lengths).float().cpu().numpy()
    return out


def evaluate(
    model: RNNRegressor, split: EncodedSplit, device: torch.device, batch_size: int = 256, prefix: str = ""
) -> dict[str, float]:
    """``{prefix}loss`` (MSE) plus MAE, RMSE and R² of ``model`` on ``split``."""
    pred = predict_split(model, split, device, batch_size)
    metrics = regression_metrics(split.scores, pred, prefix=prefix)
    metrics[f"{prefix}loss"] = metrics[f"{prefix}rmse"] ** 2
    return metrics


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train_regressor(
    model_cfg: RNNConfig,
    train_cfg: TrainConfig,
    data: EncodedCorpus,
    *,
    on_epoch: Callable[[dict[str, float], TrainState], None] | None = None,
    resume: TrainState | None = None,
    final_eval: bool = True,
) -> TrainResult:
    """Train one regressor with early stopping and return the best model.

    Args:
        model_cfg: the architecture (``vocab_size`` must match ``data.vocab_size``).
        train_cfg: optimization settings.
        data: encoded train/val(/test) splits.
        on_epoch: called after every epoch with that epoch's metrics (``epoch``, ``train_loss``,
            ``val_loss``, ``val_mae``, ``val_rmse``, ``val_r2``, ``best_val_rmse``, ``samples_per_s`` ...)
            and the :class:`TrainState` to checkpoint.
        resume: continue from this state (as saved by an earlier run's ``on_epoch``).
        final_eval: evaluate the best model on val and test at the end (into ``TrainResult.metrics``).
    """
    if model_cfg.vocab_size != data.vocab_size:
        raise ValueError(f"model vocab_size {model_cfg.vocab_size} != data vocab_size {data.vocab_size}")
    device = resolve_device(train_cfg.device)
    seed_everything(train_cfg.seed)
    model = RNNRegressor.from_config(model_cfg)
    model.set_output_mean(float(np.mean(data.train.scores)))
    model.to(device)
    optimizer = make_optimizer(model, train_cfg)
    # Halve (by default) the lr when val loss stalls for an epoch: late epochs then refine instead of
    # bouncing around at the search's sampled lr. Early stopping still ends the run after `patience`.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=train_cfg.lr_decay,
        patience=0,
        threshold=train_cfg.min_delta,
        threshold_mode="abs",
    )

    if resume is not None:
        model.load_state_dict(resume.model_state)
        optimizer.load_state_dict(resume.optimizer_state)
        if resume.scheduler_state is not None:
            scheduler.load_state_dict(resume.scheduler_state)
        if resume.torch_rng is not None:
            torch.set_rng_state(resume.torch_rng)
        state = resume
        log.info("resuming after epoch %d (best val loss %.4f)", state.epoch, state.best_val_loss)
    else:
        state = TrainState(0, {}, {}, _cpu_state(model), float("inf"), 0, 0, [])

    stopped_early = train_cfg.patience > 0 and state.bad_epochs >= train_cfg.patience
    lengths = data.train.lengths
    while state.epoch < train_cfg.max_epochs and not stopped_early:
        epoch = state.epoch + 1
        # Batch order depends only on (seed, epoch): a resumed run sees the same batches it would have.
        rng = np.random.default_rng([train_cfg.seed, epoch])
        batches = bucketed_batches(lengths, train_cfg.batch_size, rng, train_cfg.chunk_batches)
        start = time.perf_counter()
        train_loss = train_one_epoch(model, data.train, batches, optimizer, device, train_cfg.grad_clip)
        train_time = time.perf_counter() - start
        val = evaluate(model, data.val, device, train_cfg.eval_batch_size, prefix="val_")

        if val["val_loss"] < state.best_val_loss - train_cfg.min_delta:
            state.best_val_loss, state.best_epoch, state.bad_epochs = val["val_loss"], epoch, 0
            state.best_model_state = _cpu_state(model)
        else:
            state.bad_epochs += 1
        if train_cfg.lr_decay < 1:
            scheduler.step(val["val_loss"])
        stopped_early = train_cfg.patience > 0 and state.bad_epochs >= train_cfg.patience
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            **val,
            "best_val_loss": state.best_val_loss,
            "best_val_rmse": state.best_val_loss**0.5,
            "best_epoch": state.best_epoch,
            "samples_per_s": len(data.train) / train_time,
            "current_lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": time.perf_counter() - start,
        }
        state.epoch = epoch
        state.history.append(metrics)
        state.model_state = model.state_dict()
        state.optimizer_state = optimizer.state_dict()
        state.torch_rng = torch.get_rng_state()
        state.scheduler_state = scheduler.state_dict()
        log.debug("epoch %d: %s", epoch, metrics)
        if on_epoch is not None:
            on_epoch(dict(metrics), state)

    model.load_state_dict(state.best_model_state)
    result = TrainResult(
        model=model,
        history=copy.deepcopy(state.history),
        best_epoch=state.best_epoch,
        best_val_loss=state.best_val_loss,
        stopped_early=stopped_early,
        state=state,
    )
    if final_eval:
        for name, split in data.splits.items():
            if name != "train" and len(split):
                result.metrics.update(evaluate(model, split, device, train_cfg.eval_batch_size, f"{name}_"))
    return result
