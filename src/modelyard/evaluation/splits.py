"""Honest splits: train and test on disjoint prompts, everything seeded.

- `kfold`: k folds over a seeded permutation (every prompt is tested exactly once).
- `group_folds`: leave one group out, for the cross-dataset/cross-task result; the
  groups are the prompts' sources when there are several, else k-means clusters of
  the prompt embeddings (a stand-in for "tasks" in a single-source dataset).
- `inner_split`: the training side's own validation split, where knob values are
  chosen; the test prompts are never looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Split:
    """Rows of one dataset to train on and rows to test on (disjoint)."""

    name: str
    train: Ints
    test: Ints

    def __post_init__(self) -> None:
        if np.intersect1d(self.train, self.test).size:
            raise ValueError(f"split {self.name}: train and test share prompts")
        if not len(self.train) or not len(self.test):
            raise ValueError(f"split {self.name}: empty train or test side")


def kfold(n: int, folds: int, seed: int) -> list[Split]:
    """`folds` folds over a seeded permutation of range(n); `folds=1` is a 80/20 split."""
    if n < 2:
        raise ValueError(f"need at least 2 prompts to split, got {n}")
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    if folds == 1:
        cut = max(1, min(n - 1, round(n * 0.8)))
        return [Split("holdout", np.sort(order[:cut]), np.sort(order[cut:]))]
    if not 2 <= folds <= n:
        raise ValueError(f"folds must be between 1 and {n}, got {folds}")
    parts = np.array_split(order, folds)
    return [
        Split(
            f"fold {i + 1}/{folds}",
            np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])),
            np.sort(part),
        )
        for i, part in enumerate(parts)
    ]


def inner_split(train: Ints, seed: int, share: float = 0.2) -> tuple[Ints, Ints]:
    """(inner train, validation) rows of a training side, seeded."""
    order = np.random.default_rng(seed + 7919).permutation(train)
    cut = min(len(train) - 1, max(1, round(len(train) * share)))
    return np.sort(order[cut:]), np.sort(order[:cut])


def group_folds(groups: list[str]) -> list[Split]:
    """Leave each group out once: train on the others, test on it."""
    labels = np.asarray(groups)
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError("a cross-group split needs at least two groups")
    rows = np.arange(len(labels), dtype=np.int64)
    return [Split(f"held out: {g}", rows[labels != g], rows[labels == g]) for g in names]


def cluster_groups(vectors: npt.NDArray[np.float32], k: int, seed: int) -> list[str]:
    """k-means cluster labels ("cluster 1" …) of prompt embeddings, seeded."""
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors)
    return [f"cluster {int(label) + 1}" for label in labels]
