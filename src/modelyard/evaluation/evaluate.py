"""Run a plan: single models and every router through the replay Engine, in worker
processes when asked, then hand the ledger-derived runs to `summary`.

Work is cut into one task per (split, router) — train, calibrate, select, sweep —
so two workers keep two cores busy and the progress bar moves per task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import anyio
import numpy as np

from modelyard.embeddings import Encoder
from modelyard.evaluation.cascades import CascadeResult, run_cascades
from modelyard.evaluation.harness import RoutedRun
from modelyard.evaluation.metrics import pick_pair
from modelyard.evaluation.plans import Plan, SplitSpec
from modelyard.evaluation.sweep import (
    RouterResult,
    RouterTask,
    ScorerFactory,
    learned_scorer,
    run_router,
    run_singles,
)
from modelyard.evaluation.verified import run_learned_cascades
from modelyard.learned.outcomes import OutcomeSet

Progress = Callable[[str], None]
# Single-threaded BLAS/torch in workers: two processes on two cores, not 2 × N threads.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Settings:
    routers: tuple[str, ...] = ("knn", "mlp", "mf")
    seed: int = 0
    knobs: int = 16
    workers: int = 1
    named_pairs: tuple[tuple[str, str], ...] = ()
    factory: ScorerFactory = learned_scorer


@dataclass
class PlanRuns:
    """What a plan produced: single-model runs over all test prompts, and per split
    and router the test-side sweeps."""

    plan: Plan
    singles: dict[str, RoutedRun]
    tasks: list[RouterTask] = field(default_factory=list)
    results: list[RouterResult] = field(default_factory=list)
    cascades: list[CascadeResult] = field(default_factory=list)


def pairs_for(
    split: SplitSpec, named: Sequence[tuple[str, str]]
) -> tuple[tuple[str, str, str], ...]:
    """The strong/weak pairs of a split, labelled: "threshold" for the strongest model
    and the cheapest one on the split's TRAINING prompts, "threshold:<strong>/<weak>"
    for each named pair whose models the data has. Picked per split from training
    prompts only; where the picks differ between folds the summary gives per-split
    figures only (see `summary.threshold_summary`)."""
    data, rows = split.train.data, split.train.rows
    strong, weak = pick_pair(data.quality[rows], data.cost_usd[rows], data.models)
    pairs = [("threshold", strong, weak)]
    for s, w in named:
        if s in data.models and w in data.models and (s, w) != (strong, weak):
            pairs.append((f"threshold:{s}/{w}", s, w))
    return tuple(pairs)


def best_model(split: SplitSpec) -> str:
    """The model with the highest mean quality on the training prompts."""
    data, rows = split.train.data, split.train.rows
    return data.models[int(np.argmax(np.nanmean(data.quality[rows], axis=0)))]


def tasks_for(plan: Plan, encoder: Encoder, settings: Settings) -> list[RouterTask]:
    routers = [r for r in settings.routers if runnable(r, plan.test_data)]
    return [
        RouterTask(
            router=router,
            split=split.name,
            train=split.train,
            test=split.test,
            encoder=encoder,
            pairs=pairs_for(split, settings.named_pairs),
            best_model=best_model(split),
            seed=settings.seed,
            knobs=settings.knobs,
            factory=settings.factory,
        )
        for split in plan.splits
        for router in routers
    ]


# The pseudo-router that evaluates agreement cascades (see `cascades`) instead of a
# prompt-only router; it needs outcome data with parsed answers.
CASCADE = "cascade"
# Cascades with a learned verifier (see `verified`); they need recorded answers.
CASCADE_LEARNED = "cascade-learned"
CASCADE_FAMILIES = {CASCADE: run_cascades, CASCADE_LEARNED: run_learned_cascades}


def runnable(router: str, data: OutcomeSet) -> bool:
    """Whether `router` can be evaluated on `data`: agreement cascades need parsed
    answers, learned-verifier cascades recorded ones."""
    if router == CASCADE:
        return bool(data.preds)
    if router == CASCADE_LEARNED:
        return bool(data.responses)
    return True


def _task_in_worker(task: RouterTask) -> RouterResult | CascadeResult:
    family = CASCADE_FAMILIES.get(task.router)
    if family is not None:
        return anyio.run(
            family, task.train, task.test, task.split, task.best_model, task.knobs, task.seed
        )
    return anyio.run(run_router, task, time.perf_counter)


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Children inherit the environment at spawn: pin their thread pools to one."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # torch is only needed by the MF router
        pass


def _singles_key(runs: PlanRuns) -> tuple[int, tuple[int, ...]]:
    rows = np.unique(np.concatenate([s.test.rows for s in runs.plan.splits]))
    return id(runs.plan.test_data), tuple(int(r) for r in rows)


def _singles_in_worker(
    data: OutcomeSet, rows: list[int], seed: int, models: tuple[str, ...]
) -> dict[str, RoutedRun]:
    return anyio.run(run_singles, data, rows, seed, models)


# Single models are replayed in groups of this many, so the groups spread over workers.
SINGLES_PER_JOB = 8


def run_plans(
    plans: Sequence[Plan], encoder: Encoder, settings: Settings, progress: Progress | None = None
) -> list[PlanRuns]:
    """Every plan's single models and (split, router) tasks; `progress(label)` after each.

    Single models are replayed once per distinct test set. With workers, all the work
    of all plans goes to one pool at once, so no core idles between plans."""
    report = progress or (lambda _label: None)
    out = [PlanRuns(plan, {}, tasks_for(plan, encoder, settings)) for plan in plans]
    singles_jobs = {_singles_key(r): r.plan.test_data for r in out}
    jobs: list[tuple[Any, Callable[..., Any], tuple[Any, ...], str]] = [
        (
            (key, start),
            _singles_in_worker,
            (data, list(key[1]), settings.seed, group),
            f"single models {start + 1}-{start + len(group)} of {len(data.models)}",
        )
        for key, data in singles_jobs.items()
        for start in range(0, len(data.models), SINGLES_PER_JOB)
        for group in [data.models[start : start + SINGLES_PER_JOB]]
    ] + [
        ((i, j), _task_in_worker, (task,), f"{task.router} on {task.split}")
        for i, runs in enumerate(out)
        for j, task in enumerate(runs.tasks)
    ]
    done: dict[Any, Any] = {}
    if settings.workers <= 1 or len(jobs) <= 1:
        for key, fn, args, label in jobs:
            done[key] = fn(*args)
            report(label)
    else:
        with (
            _single_threaded_children(),
            ProcessPoolExecutor(
                max_workers=settings.workers,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
            ) as pool,
        ):
            futures = {pool.submit(fn, *args): (key, label) for key, fn, args, label in jobs}
            for future in as_completed(futures):
                key, label = futures[future]
                done[key] = future.result()
                report(label)
    for i, runs in enumerate(out):
        key = _singles_key(runs)
        finished = [done[i, j] for j in range(len(runs.tasks))]
        runs.results = [r for r in finished if isinstance(r, RouterResult)]
        runs.cascades = [r for r in finished if isinstance(r, CascadeResult)]
        runs.tasks = [t for t in runs.tasks if t.router not in CASCADE_FAMILIES]
        runs.singles = {
            m: run for (k, _), part in done.items() if k == key for m, run in part.items()
        }
    return out
