"""seqlab.train: one training run of the RNN scorer (the loop every Tune trial runs). No Ray here."""

from seqlab.train.data import EncodedCorpus, EncodedSplit, bucketed_batches, collate, random_batches
from seqlab.train.metrics import regression_metrics
from seqlab.train.regressor import (
    TrainConfig,
    TrainResult,
    TrainState,
    evaluate,
    predict_split,
    resolve_device,
    train_one_epoch,
    train_regressor,
)

__all__ = [
    "EncodedCorpus",
    "EncodedSplit",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "bucketed_batches",
    "collate",
    "evaluate",
    "predict_split",
    "random_batches",
    "regression_metrics",
    "resolve_device",
    "train_one_epoch",
    "train_regressor",
]
