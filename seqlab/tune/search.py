"""The architecture + hyperparameter search: Ray Tune ``Tuner`` with ``OptunaSearch`` (TPE) and ASHA.

Each trial is :func:`run_trial`, a Tune function trainable that runs :func:`seqlab.train.train_regressor`
(the same loop as a plain call) and reports every epoch with a checkpoint, so ASHA can stop it early, a failed
trial retries from its last checkpoint (``FailureConfig``), and an interrupted search resumes with
``Tuner.restore`` without re-running finished trials. The encoded corpus reaches trials through
``tune.with_parameters`` (put in the object store once).

Example::

    tuner = build_tuner(cfg, corpus.encoded, storage_path="runs/tune")
    grid = tuner.fit()
    trials = collect_trials(grid)
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from ray import tune

from seqlab import artifacts
from seqlab.models.rnn import RNNConfig, RNNRegressor, architecture_name
from seqlab.train.data import EncodedCorpus
from seqlab.train.regressor import TrainConfig, TrainState, resolve_device, train_regressor
from seqlab.tune.config import CHOICE_KEYS, MODEL_KEYS, SearchSpace, TuneJobConfig

__all__ = [
    "METRIC",
    "MODE",
    "MODEL_KEYS",
    "TrialEpochBudget",
    "TrialRecord",
    "architecture_points",
    "build_param_space",
    "build_search",
    "build_tuner",
    "collect_trials",
    "load_trial_model",
    "restore_tuner",
    "run_trial",
    "search_finished",
    "seeded_points",
    "trial_resources",
]

log = logging.getLogger(__name__)

METRIC, MODE = "best_val_rmse", "min"  # what ASHA and Optuna optimize: the trial's best val RMSE so far
TRAIN_KEYS = ("lr", "batch_size")


def build_param_space(space: SearchSpace) -> dict[str, Any]:
    """Tune's param space from a :class:`SearchSpace`: lists -> ``tune.choice`` (a one-element list is a
    constant, so the searcher does not spend effort on it), ``lr`` -> ``tune.loguniform``."""
    params: dict[str, Any] = {}
    for name in CHOICE_KEYS:
        values = list(dict.fromkeys(getattr(space, name)))  # dedupe, keep order
        params[name] = values[0] if len(values) == 1 else tune.choice(values)
    low, high = space.lr
    params["lr"] = low if low == high else tune.loguniform(low, high)
    return params


def _nearest(values: list[Any], preferred: Any) -> Any:
    """``preferred`` if listed, else the listed number closest to it (by ratio), else the middle value."""
    if preferred in values:
        return preferred
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and v > 0]
    if numbers and isinstance(preferred, int | float) and preferred > 0:
        return min(numbers, key=lambda v: abs(np.log(v / preferred)))
    return values[len(values) // 2]


def architecture_points(space: SearchSpace, preferred: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One starting trial per architecture (cell x direction) in ``space``, the other parameters at
    ``preferred`` (snapped to the nearest value in the space; by default
    :data:`seqlab.tune.config.KNOWN_GOOD`, via ``search.seed_values``) or, where ``preferred`` leaves one
    out, at the middle of its list and ``lr`` at the geometric middle of its bounds.

    Evaluated first (``points_to_evaluate``), they guarantee the report's per-architecture table a row for
    each of RNN, BiRNN, GRU, BiGRU, LSTM, BiLSTM before the searcher starts exploiting, and with good
    settings they give the searcher strong results to start from instead of spending its first trials.
    """
    preferred = preferred or {}
    middle = {}
    for name in CHOICE_KEYS:
        values = list(dict.fromkeys(getattr(space, name)))
        middle[name] = _nearest(values, preferred[name]) if name in preferred else values[len(values) // 2]
    low, high = space.lr
    middle["lr"] = float(np.clip(preferred["lr"], low, high)) if "lr" in preferred else (low * high) ** 0.5
    searched = [k for k, v in build_param_space(space).items() if isinstance(v, tune.search.sample.Domain)]
    points = []
    for cell in dict.fromkeys(space.cell):
        for bidirectional in dict.fromkeys(space.bidirectional):
            point = {**middle, "cell": cell, "bidirectional": bidirectional}
            points.append({k: point[k] for k in searched})
    return points


def seeded_points(search) -> list[dict[str, Any]]:
    """The seeded architecture trials of a :class:`seqlab.tune.config.SearchConfig` (empty when off)."""
    return architecture_points(search.space, search.seed_values) if search.seed_architectures else []


def trial_resources(cfg: TuneJobConfig) -> dict[str, float]:
    """Per-trial ``{"cpu": ..., "gpu": ...}``; ``gpus_per_trial=None`` means 0.25 if the cluster has GPUs."""
    import ray

    gpu = cfg.resources.gpus_per_trial
    if gpu is None:
        gpu = 0.25 if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return {"cpu": cfg.resources.cpus_per_trial, "gpu": gpu}


def run_trial(
    config: dict[str, Any], data: EncodedCorpus, train_defaults: dict[str, Any], cpus: float
) -> None:
    """One Tune trial: train with ``config``'s architecture and optimizer settings, report every epoch.

    Args:
        config: one sample of the param space (``cell``, ``hidden``, ``lr``, ``batch_size``, ...).
        data: the encoded corpus (from the object store via ``tune.with_parameters``).
        train_defaults: the job's :class:`TrainConfig` as a dict (epochs, patience, optimizer, ...).
        cpus: this trial's CPU share; torch uses that many threads.
    """
    import ray
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    model_cfg = RNNConfig(vocab_size=data.vocab_size, **{k: config[k] for k in MODEL_KEYS})
    train_cfg = TrainConfig.model_validate({**train_defaults, **{k: config[k] for k in TRAIN_KEYS}})
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            resume = TrainState.load(directory)
    num_parameters = RNNRegressor.from_config(model_cfg).num_parameters()
    on_gpu = int(resolve_device(train_cfg.device).type == "cuda")  # a fractional-GPU trial sees cuda:0
    node_id = ray.get_runtime_context().get_node_id()  # where it ran: a retried trial may move

    def report(metrics: dict[str, float], state: TrainState) -> None:
        with tempfile.TemporaryDirectory() as directory:
            state.save(directory)
            # reported_at orders epochs across concurrent trials (seqlab bench tune counts trial-epochs).
            metrics = {
                **metrics,
                "num_parameters": num_parameters,
                "on_gpu": on_gpu,
                "node_id": node_id,
                "reported_at": time.time(),
            }
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))

    train_regressor(model_cfg, train_cfg, data, on_epoch=report, resume=resume, final_eval=False)


class TrialEpochBudget(tune.Stopper):
    """Ends the whole search once ``max_trial_epochs`` epochs were reported across all trials."""

    def __init__(self, max_trial_epochs: int) -> None:
        self.max_trial_epochs = max_trial_epochs
        self.spent = 0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.spent += 1
        return False

    def stop_all(self) -> bool:
        return self.spent >= self.max_trial_epochs


def _trainable(cfg: TuneJobConfig, data: EncodedCorpus):
    resources = trial_resources(cfg)
    log.info("per-trial resources: %s", resources)
    fn = tune.with_parameters(
        run_trial, data=data, train_defaults=cfg.train.model_dump(), cpus=resources["cpu"]
    )
    return tune.with_resources(fn, resources)


def build_search(cfg: TuneJobConfig):
    """The ``(search_alg, scheduler)`` pair of ``cfg.search``: ``OptunaSearch`` with a seeded
    ``TPESampler`` (its start-up trials, multivariate/grouped if asked) or random sampling; ASHA on the
    ``epoch`` counter up to ``train.max_epochs``, or FIFO. ``seed_architectures`` adds
    :func:`architecture_points` as the first trials of either."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    search = cfg.search
    points = seeded_points(search) or None
    if search.algorithm == "optuna":
        import warnings

        import optuna

        from seqlab.logs import quiet_optuna

        quiet_optuna()

        with warnings.catch_warnings():  # multivariate/group TPE are "experimental" in Optuna's terms
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if search.sampler == "gp":
                sampler = optuna.samplers.GPSampler(
                    seed=search.seed, n_startup_trials=search.tpe_startup_trials
                )
            else:
                sampler = optuna.samplers.TPESampler(
                    seed=search.seed,
                    n_startup_trials=search.tpe_startup_trials,
                    multivariate=search.tpe_multivariate,
                    group=search.tpe_multivariate,
                    constant_liar=search.tpe_constant_liar,
                )
        searcher = OptunaSearch(sampler=sampler, points_to_evaluate=points)
    else:
        searcher = BasicVariantGenerator(
            random_state=search.seed, max_concurrent=search.max_concurrent or 0, points_to_evaluate=points
        )
    if search.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr="epoch",
            max_t=cfg.train.max_epochs,
            grace_period=search.grace_period,
            reduction_factor=search.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    return searcher, scheduler


def build_tuner(cfg: TuneJobConfig, data: EncodedCorpus, storage_path: str, callbacks: list | None = None):
    """A ready-to-``fit()`` ``ray.tune.Tuner`` for ``cfg`` (smoke reductions must already be applied).

    Args:
        cfg: the job config.
        data: the encoded corpus every trial trains on.
        storage_path: Tune storage (local dir or URI); the experiment lands in ``storage_path/cfg.run.name``.
        callbacks: extra ``ray.tune.Callback`` objects.
    """
    # Every epoch checkpoints by design; Tune's "snapshotting too often" warning would repeat all run long.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    search = cfg.search
    searcher, scheduler = build_search(cfg)
    stop = TrialEpochBudget(search.max_trial_epochs) if search.max_trial_epochs else None
    return tune.Tuner(
        _trainable(cfg, data),
        param_space=build_param_space(search.space),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=search.num_samples,
            max_concurrent_trials=search.max_concurrent,
            reuse_actors=True,  # skip a new process + torch import per trial
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=cfg.run.name,
            storage_path=artifacts.resolve(storage_path),
            stop=stop,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=cfg.run.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=cfg.run.checkpoints_to_keep),
            verbose=cfg.run.verbose,
        ),
    )


def restore_tuner(experiment_path: str, cfg: TuneJobConfig, data: EncodedCorpus):
    """Reopen an interrupted search: finished trials are kept, unfinished and errored ones continue from
    their last checkpoints (``Tuner.restore(..., resume_errored=True)``)."""
    path = artifacts.resolve(experiment_path)
    if not tune.Tuner.can_restore(path):
        raise FileNotFoundError(f"no Tune experiment to resume at {experiment_path}")
    return tune.Tuner.restore(path, trainable=_trainable(cfg, data), resume_errored=True)


@dataclass
class TrialRecord:
    """One finished (or stopped) trial, as the report and the export need it."""

    trial_id: str
    config: dict[str, Any]
    history: pd.DataFrame
    best_val_rmse: float
    epochs: int
    samples_per_s: float
    num_parameters: int
    checkpoint: tune.Checkpoint | None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return architecture_name(self.config["cell"], bool(self.config["bidirectional"]))


def collect_trials(grid) -> list[TrialRecord]:
    """Records of every trial in a ``ResultGrid`` that reported at least one epoch."""
    records = []
    for result in grid:
        metrics = result.metrics or {}
        if METRIC not in metrics:
            continue
        history = result.metrics_dataframe
        if history is None or history.empty:
            history = pd.DataFrame([metrics])
        # A retried trial may report an epoch twice; keep the last report of each epoch.
        history = history.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)
        records.append(
            TrialRecord(
                trial_id=str(metrics.get("trial_id", os.path.basename(result.path))),
                config={k: result.config[k] for k in (*MODEL_KEYS, *TRAIN_KEYS)},
                history=history,
                best_val_rmse=float(history[METRIC].min()),
                epochs=int(history["epoch"].nunique()),
                samples_per_s=float(np.median(history["samples_per_s"])),
                num_parameters=int(metrics.get("num_parameters", 0)),
                checkpoint=result.checkpoint,
                error=str(result.error) if result.error else None,
            )
        )
    return records


def load_trial_model(record: TrialRecord, data: EncodedCorpus) -> RNNRegressor:
    """The best-epoch weights of a trial, from its latest checkpoint (which carries them)."""
    if record.checkpoint is None:
        raise FileNotFoundError(f"trial {record.trial_id} left no checkpoint")
    with record.checkpoint.as_directory() as directory:
        state = TrainState.load(directory)
    model = RNNRegressor.from_config(
        RNNConfig(vocab_size=data.vocab_size, **{k: record.config[k] for k in MODEL_KEYS})
    )
    model.load_state_dict(state.best_model_state)
    return model.eval()


def search_finished(grid, cfg: TuneJobConfig) -> bool:
    """False when the search was interrupted (trials left unfinished, or fewer trials than asked for
    without the trial-epoch budget running out).

    The ``ResultGrid`` alone cannot tell: on Ctrl+C Tune marks every running trial TERMINATED while it
    cleans up, so a search stopped after its last trial started looks finished. The experiment state Tune
    saved just before that cleanup still holds those trials as unfinished, and is what decides here.
    """
    if grid.num_terminated + grid.num_errors < len(grid):
        return False
    saved = tune.ExperimentAnalysis(grid.experiment_path, storage_filesystem=grid.filesystem)
    if any(t.status not in ("TERMINATED", "ERROR") for t in saved.trials):
        return False
    if len(grid) >= cfg.search.num_samples:
        return True
    budget = cfg.search.max_trial_epochs
    spent = sum(int(r.metrics.get("training_iteration", 0)) for r in grid if r.metrics)
    return bool(budget) and spent >= budget
