"""`run_evaluations`: the whole study the `modelyard eval` command and the routing
benchmark run — load, embed once, plan the splits, replay, summarise."""

from __future__ import annotations

import fnmatch
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelyard.evaluation.encoding import PrecomputedEncoder
from modelyard.evaluation.evaluate import (
    CASCADE_LEARNED,
    SINGLES_PER_JOB,
    Settings,
    run_plans,
    runnable,
)
from modelyard.evaluation.plans import Plan, cross_dataset, cross_task, in_distribution
from modelyard.evaluation.summary import summarise
from modelyard.learned.outcomes import OutcomeSet, load_outcomes


@dataclass(frozen=True)
class Study:
    """What to evaluate and how.

    `folds` k-fold splits of `data` (0: none); `cross_task` leave-one-source (or
    topic cluster) out; `cross`: a second dataset, trained on `data` and tested on
    `cross` (and the reverse too with `cross_both`). `vector_cache`: where prompt
    vectors are kept between runs (None: not kept)."""

    data: Path | OutcomeSet
    cross: Path | OutcomeSet | None = None
    cross_both: bool = False
    exclude: Sequence[str] = ()
    folds: int = 5
    cross_task: bool = True
    clusters: int = 4
    encoder: str = "minilm-l6-v2"
    settings: Settings = field(default_factory=Settings)
    vector_cache: Path | None = None


class Phases(Protocol):
    """Progress, phase by phase: `start` a phase of `total` steps (None: unknown),
    then `advance` it by `n` steps with a label for the step just done."""

    def start(self, name: str, total: int | None) -> None: ...

    def advance(self, n: int = 1, label: str | None = None) -> None: ...


class _Silent:
    def start(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1, label: str | None = None) -> None:
        pass


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
    plans = [in_distribution(data, study.folds, seed)] if study.folds else []
    if study.cross_task:
        plans.append(cross_task(data, encoder, seed, study.clusters))
    if other is not None:
        plans.append(cross_dataset(data, other))
        if study.cross_both:
            plans.append(cross_dataset(other, data))
    if not plans:
        raise ValueError("nothing to evaluate: no folds, no cross-task and no cross-dataset")
    return plans


def task_count(plans: Sequence[Plan], settings: Settings) -> int:
    """Progress steps: single models in groups once per test dataset, one per
    (split, router)."""
    test_sets = {id(p.test_data): p.test_data for p in plans}
    groups = sum(-(-len(d.models) // SINGLES_PER_JOB) for d in test_sets.values())
    return groups + sum(
        len(p.splits) * sum(runnable(r, p.test_data) for r in settings.routers) for p in plans
    )


def run_evaluations(study: Study, phases: Phases | None = None) -> dict[str, Any]:
    """Every plan's summary plus the metadata that reproduces it; `phases` hears of
    loading, embedding, and each replay task as it finishes."""
    report = phases or _Silent()
    t0 = time.perf_counter()
    report.start("loading outcomes", None)
    data, dropped = exclude_models(_load(study.data), study.exclude)
    other = None
    if study.cross is not None:
        other, _ = exclude_models(_load(study.cross), [])
        other = other.without_models([m for m in dropped if m in other.models])
    texts = data.texts + (other.texts if other is not None else [])
    encoder = PrecomputedEncoder.named(study.encoder)
    report.start(f"embedding prompts ({encoder.id})", len(set(texts)))
    encoder.warm(texts, report.advance, cache_dir=study.vector_cache)
    t_embed = time.perf_counter() - t0
    # Routers are scored on quality and cost; the answer texts only cost memory and
    # the time to send them to every worker process (a learned verifier reads them).
    if CASCADE_LEARNED not in study.settings.routers:
        data = data.without_responses()
        other = other.without_responses() if other is not None else None
    plans = plans_for(study, data, other, encoder)
    report.start("training and replaying", task_count(plans, study.settings))
    evaluations = [
        summarise(r)
        for r in run_plans(plans, encoder, study.settings, lambda label: report.advance(1, label))
    ]
    s = study.settings
    meta = {
        "dataset": data.name,
        "prompts": len(data),
        "models": list(data.models),
        "excluded_models": dropped,
        "cross_dataset": other.name if other is not None else None,
        "cross_directions": (
            ["train-data-test-cross", "train-cross-test-data"]
            if study.cross_both
            else ["train-data-test-cross"]
        )
        if other is not None
        else [],
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
