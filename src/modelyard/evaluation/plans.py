"""Evaluation plans: which prompts each router trains on and which it is tested on.

- in-distribution: k folds of one dataset (each prompt tested once);
- cross-task: leave one group out, groups = the prompts' sources when the dataset
  has several, else k-means clusters of their embeddings;
- cross-dataset: train on every prompt of one dataset, test on every prompt of
  another (both restricted to the models they share).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelyard.embeddings import Encoder
from modelyard.evaluation.splits import cluster_groups, group_folds, kfold
from modelyard.evaluation.sweep import Side
from modelyard.learned.outcomes import OutcomeSet


@dataclass(frozen=True, slots=True)
class SplitSpec:
    name: str
    train: Side
    test: Side


@dataclass(frozen=True, slots=True)
class Plan:
    """Splits that together test every prompt of `test_data` at most once."""

    name: str
    kind: str
    splits: tuple[SplitSpec, ...]

    @property
    def test_data(self) -> OutcomeSet:
        return self.splits[0].test.data


def in_distribution(data: OutcomeSet, folds: int, seed: int) -> Plan:
    splits = tuple(
        SplitSpec(s.name, Side(data, s.train), Side(data, s.test))
        for s in kfold(len(data), folds, seed)
    )
    label = f"{folds}-fold" if folds > 1 else "80/20 hold-out"
    return Plan(f"in-distribution ({label}, {data.name})", "k-fold", splits)


def cross_task(data: OutcomeSet, encoder: Encoder, seed: int, clusters: int = 4) -> Plan:
    """Leave one source out when there are several; else one k-means cluster of the
    prompt embeddings (a topic) at a time."""
    sources = data.sources
    if len(set(sources)) >= 2:
        groups, how = sources, "source"
    else:
        vectors = encoder.encode(data.texts)
        groups, how = cluster_groups(vectors, clusters, seed), f"{clusters} embedding clusters"
    splits = tuple(
        SplitSpec(s.name, Side(data, s.train), Side(data, s.test)) for s in group_folds(groups)
    )
    return Plan(f"cross-task (leave one {how} out, {data.name})", "cross-task", splits)


def common_models(a: OutcomeSet, b: OutcomeSet) -> tuple[OutcomeSet, OutcomeSet]:
    """Both datasets restricted to the models they share (same column order)."""
    shared = [m for m in a.models if m in set(b.models)]
    if len(shared) < 2:
        raise ValueError(
            f"{a.name} and {b.name} share {len(shared)} model(s) ({', '.join(shared) or 'none'}); "
            "a cross-dataset evaluation needs at least two"
        )
    return a.with_models(shared), b.with_models(shared)


def cross_dataset(train: OutcomeSet, test: OutcomeSet) -> Plan:
    """Train on all of `train`, test on all of `test` (shared models only)."""
    a, b = common_models(train, test)
    rows_a = np.arange(len(a), dtype=np.int64)
    rows_b = np.arange(len(b), dtype=np.int64)
    split = SplitSpec(f"{a.name} → {b.name}", Side(a, rows_a), Side(b, rows_b))
    return Plan(f"cross-dataset (train {a.name}, test {b.name})", "cross-dataset", (split,))
