"""Reference points fit in the same run as the search: predict the mean, and TF-IDF + ridge regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge

from seqlab.train.metrics import regression_metrics

__all__ = ["fit_baselines"]

RIDGE_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)  # picked on val RMSE


def fit_baselines(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, float]]:
    """Fit both baselines on the train split; returns ``{"mean": {...}, "tfidf_ridge": {...}}`` with
    val_/test_ MAE, RMSE and R² (test only when the corpus has a test split), plus the chosen ``alpha``.

    TF-IDF uses word uni- and bigrams (sublinear tf, min_df=2) of the same normalized text the RNN reads.
    """
    train, val = frames["train"], frames["val"]
    test = frames.get("test")
    evals = {"val": val, **({"test": test} if test is not None and len(test) else {})}
    y_train = train["score"].to_numpy(np.float64)

    mean = float(y_train.mean())
    out: dict[str, dict[str, float]] = {"mean": {"value": mean}}
    for name, frame in evals.items():
        out["mean"].update(regression_metrics(frame["score"], np.full(len(frame), mean), prefix=f"{name}_"))

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
    )
    x_train = vectorizer.fit_transform(train["text"])
    x = {name: vectorizer.transform(frame["text"]) for name, frame in evals.items()}
    best: tuple[float, Ridge, float] | None = None
    for alpha in RIDGE_ALPHAS:
        model = Ridge(alpha=alpha).fit(x_train, y_train)
        rmse = regression_metrics(val["score"], np.clip(model.predict(x["val"]), 0, 10))["rmse"]
        if best is None or rmse < best[0]:
            best = (rmse, model, alpha)
    _, model, alpha = best
    out["tfidf_ridge"] = {"alpha": alpha}
    for name, frame in evals.items():
        pred = np.clip(model.predict(x[name]), 0, 10)
        out["tfidf_ridge"].update(regression_metrics(frame["score"], pred, prefix=f"{name}_"))
    return out
