"""Fitting the per-model heads of `MlpPredictor` with scikit-learn (training only).

Quality is a probability (a judge's win-rate) or a 0/1 outcome, so the logistic
head is fitted on soft labels: each prompt appears once as a positive weighted q
and once as a negative weighted 1 − q, which is exactly the cross-entropy
against q. The MLP head regresses q directly (L-BFGS, L2 penalty `alpha`).
A model with too few observations gets a constant head at its mean. The shared head
is one multi-output MLP regression for every model; a cell without an outcome is
given its model's mean (multi-output regression needs a full target matrix).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from modelyard.learned.mlp import Head, MlpPredictor
from modelyard.learned.predictors import Arrays, Floats, Vectors, column_means

MIN_ROWS = 5


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return float(np.log(p / (1 - p)))


def fit_mlp(
    x: Vectors,
    quality: Floats,
    *,
    seed: int = 0,
    head: Head = "logistic",
    c: float = 1.0,
    hidden: int = 64,
    alpha: float = 1.0,
    max_iter: int = 150,
) -> MlpPredictor:
    """One head per column of `quality` (NaN cells are skipped)."""
    # Small problems: BLAS threads only contend (several times slower on 2 cores).
    with threadpool_limits(1):
        if head == "shared":
            return _fit_shared(x, quality, seed, hidden, alpha, max_iter)
        return _fit(x, quality, seed, head, c, hidden, alpha, max_iter)


def _fit_shared(
    x: Vectors, quality: Floats, seed: int, hidden: int, alpha: float, max_iter: int
) -> MlpPredictor:
    means = column_means(quality)
    target = np.where(np.isnan(quality), means, quality)
    model = MLPRegressor(
        hidden_layer_sizes=(hidden,),
        alpha=alpha,
        solver="lbfgs",
        max_iter=max_iter,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, target)
    (w1, w2), (b1, b2) = model.coefs_, model.intercepts_
    weights: Arrays = {
        "w1": w1.astype(np.float32),
        "b1": b1.astype(np.float32),
        "w2": w2.astype(np.float32),
        "b2": np.asarray(b2, dtype=np.float64).reshape(-1),
    }
    return MlpPredictor("shared", weights, {"hidden": hidden, "alpha": alpha})


def _fit(
    x: Vectors,
    quality: Floats,
    seed: int,
    head: Head,
    c: float,
    hidden: int,
    alpha: float,
    max_iter: int,
) -> MlpPredictor:
    dim, models = x.shape[1], quality.shape[1]
    params: dict[str, Any] = {"c": c} if head == "logistic" else {"hidden": hidden, "alpha": alpha}
    if head == "logistic":
        w, b = np.zeros((models, dim), np.float32), np.zeros(models)
    else:
        w1, b1 = np.zeros((models, dim, hidden), np.float32), np.zeros((models, hidden), np.float32)
        w2, b2 = np.zeros((models, hidden), np.float32), np.zeros(models)
    for j in range(models):
        seen = ~np.isnan(quality[:, j])
        xs, q = x[seen], quality[seen, j]
        constant = len(q) < MIN_ROWS or float(np.ptp(q)) == 0.0
        if head == "logistic":
            if constant:
                b[j] = _logit(float(q.mean()) if len(q) else 0.5)
            else:
                w[j], b[j] = _fit_logistic(xs, q, c, max_iter)
        elif constant:
            b2[j] = float(q.mean()) if len(q) else 0.5
        else:
            w1[j], b1[j], w2[j], b2[j] = _fit_regressor(xs, q, hidden, alpha, max_iter, seed)
    weights: Arrays = (
        {"w": w, "b": b} if head == "logistic" else {"w1": w1, "b1": b1, "w2": w2, "b2": b2}
    )
    return MlpPredictor(head, weights, params)


def _fit_logistic(
    x: Vectors, q: Floats, c: float, max_iter: int
) -> tuple[np.ndarray[Any, Any], float]:
    model = LogisticRegression(C=c, max_iter=max_iter)
    if np.isin(q, (0.0, 1.0)).all():
        # Right/wrong outcomes: the doubled soft-label rows would carry weights 1 and 0,
        # the same loss at twice the work.
        xx, yy, weight = x, q, None
    else:
        n = len(q)
        xx = np.concatenate([x, x])
        yy = np.concatenate([np.ones(n), np.zeros(n)])
        weight = np.concatenate([q, 1.0 - q])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(xx, yy, sample_weight=weight)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def _fit_regressor(
    x: Vectors, q: Floats, hidden: int, alpha: float, max_iter: int, seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any], float]:
    model = MLPRegressor(
        hidden_layer_sizes=(hidden,),
        alpha=alpha,
        solver="lbfgs",
        max_iter=max_iter,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, q)
    (w1, w2), (b1, b2) = model.coefs_, model.intercepts_
    return w1.astype(np.float32), b1.astype(np.float32), w2[:, 0].astype(np.float32), float(b2[0])
