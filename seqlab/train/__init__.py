"""seqlab.train: one training run of the RNN scorer (the loop every Tune trial runs). No Ray here.

The names below are imported on first use, so ``seqlab.train.config`` loads without PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

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
__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
