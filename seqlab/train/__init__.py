"""seqlab.train: one training run of the RNN scorer (the loop every Tune trial runs). No Ray here.

The names below are imported on first use, so ``seqlab.train.config`` loads without PyTorch.
"""

from __future__ import annotations

from seqlab.lazy import lazy_exports

_SOURCES = {
    "EncodedCorpus": "data",
    "EncodedSplit": "data",
    "bucketed_batches": "data",
    "collate": "data",
    "random_batches": "data",
    "regression_metrics": "metrics",
    "TrainConfig": "config",
    "TrainResult": "regressor",
    "TrainState": "regressor",
    "evaluate": "regressor",
    "predict_split": "regressor",
    "resolve_device": "regressor",
    "train_one_epoch": "regressor",
    "train_regressor": "regressor",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _SOURCES)
