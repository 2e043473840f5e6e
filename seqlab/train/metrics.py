"""Regression metrics of a scorer: MAE, RMSE, R² (scikit-learn)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

__all__ = ["regression_metrics"]


def regression_metrics(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray, prefix: str = ""
) -> dict[str, float]:
    """MAE, RMSE and R² of predictions, keyed ``{prefix}mae`` etc.

    R² is NaN when ``y_true`` is constant (undefined), never an exception.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError(f"need two equal-length 1-D arrays, got {y_true.shape} and {y_pred.shape}")
    r2 = float(r2_score(y_true, y_pred)) if len(y_true) > 1 and np.ptp(y_true) > 0 else math.nan
    return {
        f"{prefix}mae": float(mean_absolute_error(y_true, y_pred)),
        f"{prefix}rmse": float(math.sqrt(mean_squared_error(y_true, y_pred))),
        f"{prefix}r2": r2,
    }
