"""Evaluation plans: which prompts each router trains on and which it is tested on.

- in-distribution: k folds of one dataset (each prompt tested once);
- cross-task: leave one group out, groups = the prompts' sources when the dataset
  has several, else k-means clusters of their embeddings;
- cross-dataset: train on every prompt of one dataset, test on every prompt of
  another (both restricted to the models they share: the same name, or else the same
  model family once dates, snapshots and serving providers are stripped from the
  names, e.g. `gemini-1.5-flash-002` and `gemini-1.5-flash`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


# Name parts that tell snapshots and servings of one model apart, not different models.
_SNAPSHOT = re.compile(
    r"(@.*$)|(-fp8)|(_concise$)|(-exp)?(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-\d{3})$"
)


def family_key(model: str) -> str:
    """A model name without its date, snapshot number, serving provider or variant tag:
    `gpt-4o-2024-05-13` → `gpt-4o`, `llama-3.1-405b-instruct@together` →
    `llama-3.1-405b-instruct`, `gemini-1.5-pro-002` → `gemini-1.5-pro`."""
    key = model.lower()
    while True:
        shorter = _SNAPSHOT.sub("", key)
        if shorter == key:
            return key
        key = shorter


def match_models(a: Sequence[str], b: Sequence[str]) -> dict[str, str]:
    """Model of `b` → the model of `a` it stands for: the same name, or else the same
    family key (the first of `b`'s models of that family, in `b`'s order)."""
    matched = {m: m for m in b if m in set(a)}
    taken = set(matched.values())
    by_family: dict[str, str] = {}
    for m in a:
        if m not in taken:
            by_family.setdefault(family_key(m), m)
    for m in b:
        target = by_family.get(family_key(m))
        if m not in matched and target is not None and target not in taken:
            matched[m] = target
            taken.add(target)
    return matched


def common_models(a: OutcomeSet, b: OutcomeSet) -> tuple[OutcomeSet, OutcomeSet]:
    """Both datasets restricted to the models they share (see `match_models`), `b`'s
    renamed to `a`'s names, in `a`'s column order."""
    names = match_models(a.models, b.models)
    b = b.with_models(list(names)).renamed_models(names)
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
