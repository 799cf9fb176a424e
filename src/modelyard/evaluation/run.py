"""`run_evaluations`: the whole study the `modelyard eval` command and the routing
benchmark run — load, embed once, plan the splits, replay, summarise."""

from __future__ import annotations

import fnmatch
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.evaluation.encoding import PrecomputedEncoder
from modelyard.evaluation.evaluate import Settings, run_plans
from modelyard.evaluation.plans import Plan, cross_dataset, cross_task, in_distribution
from modelyard.evaluation.summary import summarise
from modelyard.learned.outcomes import OutcomeSet, load_outcomes


@dataclass(frozen=True)
class Study:
    """What to evaluate and how."""

    data: Path | OutcomeSet
    cross: Path | OutcomeSet | None = None
    exclude: Sequence[str] = ()
    folds: int = 5
    cross_task: bool = True
    clusters: int = 4
    encoder: str = "minilm-l6-v2"
    settings: Settings = field(default_factory=Settings)


def exclude_models(data: OutcomeSet, patterns: Sequence[str]) -> tuple[OutcomeSet, list[str]]:
    """`data` without the models matching any glob pattern (each must match one)."""
    dropped: list[str] = []
    for pattern in patterns:
        matched = [m for m in data.models if fnmatch.fnmatchcase(m, pattern)]
        if not matched:
            raise ValueError(
                f"--exclude-models {pattern!r} matches no model of {data.name} "
                f"(models: {', '.join(data.models)})"
            )
        dropped += [m for m in matched if m not in dropped]
    if len(data.models) - len(dropped) < 2:
        raise ValueError("excluding those models leaves fewer than two")
    return (data.without_models(dropped) if dropped else data), dropped


def _load(source: Path | OutcomeSet) -> OutcomeSet:
    return source if isinstance(source, OutcomeSet) else load_outcomes(source)


def plans_for(
    study: Study, data: OutcomeSet, other: OutcomeSet | None, encoder: PrecomputedEncoder
) -> list[Plan]:
    seed = study.settings.seed
    plans = [in_distribution(data, study.folds, seed)]
    if study.cross_task:
        plans.append(cross_task(data, encoder, seed, study.clusters))
    if other is not None:
        plans += [cross_dataset(data, other), cross_dataset(other, data)]
    return plans


def task_count(plans: Sequence[Plan], settings: Settings) -> int:
    """Progress steps: single models once per test dataset, one per (split, router)."""
    test_sets = {id(p.test_data) for p in plans}
    return len(test_sets) + sum(len(p.splits) * len(settings.routers) for p in plans)


def run_evaluations(
    study: Study,
    *,
    on_plans: Callable[[int], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every plan's summary plus the metadata that reproduces it."""
    t0 = time.perf_counter()
    data, dropped = exclude_models(_load(study.data), study.exclude)
    other = None
    if study.cross is not None:
        other, _ = exclude_models(_load(study.cross), [])
        other = other.without_models([m for m in dropped if m in other.models])
    encoder = PrecomputedEncoder.named(study.encoder)
    encoder.warm(data.texts + (other.texts if other is not None else []))
    t_embed = time.perf_counter() - t0
    plans = plans_for(study, data, other, encoder)
    if on_plans is not None:
        on_plans(task_count(plans, study.settings))
    evaluations = [summarise(r) for r in run_plans(plans, encoder, study.settings, progress)]
    s = study.settings
    meta = {
        "dataset": data.name,
        "prompts": len(data),
        "models": list(data.models),
        "excluded_models": dropped,
        "cross_dataset": other.name if other is not None else None,
        "encoder": encoder.id,
        "routers": list(s.routers),
        "folds": study.folds,
        "seed": s.seed,
        "knob_values": s.knobs,
        "workers": s.workers,
        "named_pairs": [list(p) for p in s.named_pairs],
        "seconds": {"embedding": t_embed, "total": time.perf_counter() - t0},
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    return {"meta": meta, "evaluations": evaluations}
