"""Hyper-parameter search: seeded k-fold cross-validation on the training prompts only.

Each predictor kind has a default grid (a list of sub-grids, each a mapping of
parameter → candidate values); caller parameters narrow it. The score is the mean
squared error on the held-out folds' observed (prompt, model) cells, the quantity
the predictors are fitted to; the lowest wins, the first listed on ties.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.learned.predictors import Floats, Predictor, Vectors, column_means

Fit = Callable[..., Predictor]
Indices = npt.NDArray[np.int64]
Progress = Callable[[str, int, int], None]

GRIDS: dict[str, list[dict[str, list[Any]]]] = {
    "knn": [
        {
            "k": [5, 10, 25, 50, 100],
            "temperature": [0.05, 0.1, 0.2, 0.5],
            "prior_weight": [0.0, 1.0, 4.0],
        }
    ],
    "mlp": [
        {"head": ["logistic"], "c": [0.1, 0.3, 1.0, 3.0]},
        # One network for every model: a single fit (31 per-model MLPs took minutes per
        # fold on 7,000 prompts) that learns difficulty from every model's outcomes.
        # The per-model `mlp` head stays available with --param head=mlp.
        {"head": ["shared"], "hidden": [64], "alpha": [1.0, 3.0, 10.0]},
    ],
    # Four settings, not sixteen: on 7,000 prompts each full-batch fit takes seconds,
    # and the finer grid never moved the held-out figures by more than their spread.
    "mf": [{"latent": [16, 64], "l2": [3e-4, 3e-3], "epochs": [150]}],
}


# Searched only when asked for by name (`head=mlp`): a per-model MLP for each of N
# models is N slow fits per candidate.
OPT_IN: dict[str, list[dict[str, list[Any]]]] = {
    "mlp": [{"head": ["mlp"], "hidden": [32], "alpha": [3.0, 10.0]}],
}


@dataclass(frozen=True, slots=True)
class Trial:
    params: dict[str, Any]
    cv_mse: float


def candidates(kind: str, overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every parameter combination to try. An override that is a list replaces that
    parameter's values; a single value fixes it. A text-valued parameter (the MLP
    `head`) selects the sub-grids that offer the value asked for."""
    if kind not in GRIDS:
        raise ValueError(f"unknown predictor kind {kind!r} (known: {', '.join(GRIDS)})")
    wanted = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in overrides.items()}
    out: list[dict[str, Any]] = []
    subgrids = GRIDS[kind] + (OPT_IN.get(kind, []) if "head" in wanted else [])
    for sub in subgrids:
        grid = dict(sub)
        for key, values in wanted.items():
            if key in grid and all(isinstance(v, str) for v in grid[key]):
                values = [v for v in values if v in grid[key]]
            grid[key] = values
        if any(not values for values in grid.values()):
            continue
        for combo in itertools.product(*grid.values()):
            params = dict(zip(grid, combo, strict=True))
            if params not in out:
                out.append(params)
    if not out:
        raise ValueError(f"no {kind} parameter combination matches {dict(overrides)}")
    return out


def kfold(n: int, folds: int, seed: int) -> list[tuple[Indices, Indices]]:
    """Seeded k-fold split of range(n): (train rows, validation rows) per fold."""
    if folds < 2 or folds > n:
        raise ValueError(f"need 2 <= folds <= {n} prompts, got {folds}")
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    return [
        (np.sort(np.concatenate(parts[:i] + parts[i + 1 :])), np.sort(parts[i]))
        for i in range(folds)
    ]


def masked_mse(pred: Floats, truth: Floats) -> float:
    seen = ~np.isnan(truth)
    return float(np.mean((pred[seen] - truth[seen]) ** 2)) if seen.any() else math.nan


def cross_validate(
    fit: Fit,
    x: Vectors,
    quality: Floats,
    trials: Sequence[dict[str, Any]],
    *,
    folds: int,
    seed: int,
    progress: Progress | None = None,
) -> tuple[list[Trial], float]:
    """CV error of each parameter set, and of the per-model-mean baseline."""
    splits = kfold(len(x), folds, seed)
    total, done = len(trials) * len(splits), 0
    results: list[Trial] = []
    for params in trials:
        errors = []
        for train, val in splits:
            predictor = fit(x[train], quality[train], seed=seed, **params)
            errors.append(masked_mse(predictor.predict(x[val]), quality[val]))
            done += 1
            if progress:
                progress("cross-validation", done, total)
        results.append(Trial(dict(params), float(np.nanmean(errors))))
    baseline = float(
        np.nanmean(
            [
                masked_mse(np.tile(column_means(quality[t]), (len(v), 1)), quality[v])
                for t, v in splits
            ]
        )
    )
    return results, baseline


def best(trials: Sequence[Trial]) -> Trial:
    return min(trials, key=lambda t: (math.isnan(t.cv_mse), t.cv_mse))
