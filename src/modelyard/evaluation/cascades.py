"""Cascades in the replay harness: agreement cascades built and chosen on the training
side, swept on the test prompts, their operating point replayed through the Engine.

A candidate cascade is `[tier one, (tie-breaker,) best]`: a parallel first tier of two
or three cheap models whose answers must agree (`agreement`, on the benchmark's own
parsed answers), optionally a third cheap model asked only when the first two
disagree (its answer is pooled with theirs), and the training side's best single
model as the last tier, served without a verdict. Which cheap models, and which
candidates make the family's curve, is decided on the training prompts only: the
cheap pool is the most accurate models costing at most `POOL_COST_SHARE` of the best
one, and the curve is the candidates on the training-side cost–quality frontier,
read at `size` cost levels (so level k means the same relative spend in every fold,
as knob indices do for routers). The operating point is the cheapest level whose
training quality reaches the best single model's.

The sweep computes each candidate's verdicts from the recorded parsed answers with
the verifier's own key function (`normalise_parsed`), the same rule the `agreement`
verifier applies; the operating point is then replayed prompt by prompt through
`Engine.complete`, and the Engine's choices are checked against the sweep's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from modelyard.evaluation.harness import ReplayHarness, RoutedRun
from modelyard.evaluation.sweep import Side
from modelyard.learned.outcomes import OutcomeSet
from modelyard.verifiers.extract import normalise_parsed

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
# Cheap models are those costing at most this share of the best single model...
POOL_COST_SHARE = 0.25
# ...and the pool keeps the most accurate few (candidates grow as pool size cubed).
POOL_SIZE = 6


class Level(Protocol):
    """A cascade the family can run: its first tier, its last (None: a model alone),
    a name for the report, and the policy settings that run it."""

    @property
    def first(self) -> tuple[str, ...]: ...

    @property
    def last(self) -> str | None: ...

    @property
    def name(self) -> str: ...

    def settings(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """One cascade: `first` answers in parallel, then `breaker` (if any), then `last`."""

    first: tuple[str, ...]
    min_agree: int
    breaker: str | None
    last: str | None  # None: a cheap model alone, the family's cheapest levels

    @property
    def name(self) -> str:
        if self.last is None:
            return self.first[0]
        tier = "+".join(self.first)
        mid = f" > {self.breaker}" if self.breaker else ""
        return f"agree{self.min_agree}({tier}){mid} > {self.last}"

    def settings(self) -> dict[str, Any]:
        """The policy config that runs this candidate (`fixed` for a model alone)."""
        if self.last is None:
            return {"type": "fixed", "model": self.first[0]}
        tiers: list[Any] = [list(self.first)]
        if self.breaker is not None:
            tiers.append(self.breaker)
        tiers.append(self.last)
        return {
            "type": "cascade",
            "tiers": tiers,
            # Token overlap, not embeddings: replayed answers are compared on their
            # parsed answers; a missing one agrees with nobody either way.
            "verifier": {"type": "agreement", "min_agree": self.min_agree, "similarity": "tokens"},
            "max_hops": len(tiers),
        }


@dataclass
class Emulated:
    """A candidate on some prompts: the model that served each, what all its calls
    cost, and the step (1-based) that answered."""

    served: Ints
    cost: Floats
    step: Ints
    first_choice: Ints  # the first tier's best supported answer (served if accepted)


class Answers:
    """Parsed answers as integer keys (−1: none), for vectorised agreement."""

    def __init__(self, data: OutcomeSet) -> None:
        codes: dict[str, int] = {}
        self.keys = np.full(data.quality.shape, -1, dtype=np.int64)
        for (pid, model), pred in data.preds.items():
            key = normalise_parsed(pred)
            self.keys[data.index(pid), data.model_index(model)] = codes.setdefault(key, len(codes))

    def support(self, rows: Ints, pool: list[int], current: list[int]) -> tuple[Ints, Ints]:
        """For each row, the best current answer's support in the pool and its column
        (the first current answer among the best supported, as the verifier picks)."""
        keys = self.keys[np.ix_(rows, np.asarray(pool, dtype=np.int64))]
        counts = np.stack(
            [
                np.where(keys[:, pool.index(c)] >= 0, (keys == keys[:, [pool.index(c)]]).sum(1), 0)
                for c in current
            ],
            axis=1,
        )
        best = np.argmax(counts, axis=1)
        return counts[np.arange(len(rows)), best], np.asarray(current)[best]


def emulate(candidate: Candidate, data: OutcomeSet, answers: Answers, rows: Ints) -> Emulated:
    """What the cascade runner does on `rows`, from the recorded outcomes."""
    col = data.model_index
    first = [col(m) for m in candidate.first]
    if candidate.last is None:
        alone = np.full(len(rows), first[0], dtype=np.int64)
        return Emulated(alone, data.cost_usd[rows, first[0]], np.ones(len(rows), np.int64), alone)
    last = col(candidate.last)
    cost = data.cost_usd[np.ix_(rows, np.asarray(first, dtype=np.int64))].sum(axis=1)
    support, chosen = answers.support(rows, first, first)
    accepted = support >= candidate.min_agree
    served = np.where(accepted, chosen, last)
    step = np.where(accepted, 1, 2)
    if candidate.breaker is not None:
        b = col(candidate.breaker)
        asked = ~accepted
        cost = cost + np.where(asked, data.cost_usd[rows, b], 0.0)
        b_support, _ = answers.support(rows, [*first, b], [b])
        rescued = asked & (b_support >= candidate.min_agree)
        served = np.where(rescued, b, served)
        step = np.where(asked, np.where(rescued, 2, 3), step)
        accepted = accepted | rescued
    cost = cost + np.where(accepted, 0.0, data.cost_usd[rows, last])
    return Emulated(served.astype(np.int64), cost, step.astype(np.int64), chosen.astype(np.int64))


def cheap_pool(data: OutcomeSet, rows: Ints, best: str) -> tuple[list[str], list[str]]:
    """The training side's cheap pool (the most accurate models costing at most
    `POOL_COST_SHARE` of `best`), and the models that make the curve's cheap end
    alone (the pool's and the cheapest overall)."""
    quality = np.nanmean(data.quality[rows], axis=0)
    cost = np.nanmean(data.cost_usd[rows], axis=0)
    limit = cost[data.model_index(best)] * POOL_COST_SHARE
    cheap = [j for j in range(len(data.models)) if cost[j] <= limit and data.models[j] != best]
    pool = [data.models[j] for j in sorted(cheap, key=lambda j: -quality[j])[:POOL_SIZE]]
    alone = list(dict.fromkeys([*pool, data.models[int(np.nanargmin(cost))]]))
    return pool, alone


def candidates(data: OutcomeSet, rows: Ints, best: str) -> list[Candidate]:
    """Every candidate over the training side's cheap pool (see the module docstring),
    and each cheap model alone."""
    pool, alone = cheap_pool(data, rows, best)
    out: list[Candidate] = [Candidate((m,), 0, None, None) for m in alone]
    for size in (2, 3):
        for first in itertools.combinations(pool, size):
            for agree in range(2, size + 1):
                out.append(Candidate(first, agree, None, best))
    for first in itertools.combinations(pool, 2):
        for breaker in pool:
            if breaker not in first:
                out.append(Candidate(first, 2, breaker, best))
    return out


def frontier_levels(points: list[tuple[float, float]], size: int, top: float) -> list[int]:
    """Indices of `size` points on the (cost, quality) frontier: for each of `size`
    cost levels spread in log scale from the cheapest point to `top`, the best point
    costing at most that level (repeats allowed, so every fold has `size` levels)."""
    costs = np.array([c for c, _ in points])
    quality = np.array([q for _, q in points])
    levels = np.geomspace(max(costs.min(), 1e-12), max(top, costs.min() * 1.0001), size)
    picked = []
    for level in levels:
        within = np.flatnonzero(costs <= level * (1 + 1e-9))
        picked.append(int(within[np.argmax(quality[within] - 1e-12 * costs[within])]))
    return picked


@dataclass
class CascadeResult:
    """One split's cascade family: the levels (candidates), their test runs, the
    operating point chosen on the training side and its Engine replay."""

    split: str
    best: str
    family: str = "cascade"
    levels: list[Level] = field(default_factory=list)
    runs: list[RoutedRun] = field(default_factory=list)
    steps: list[Ints] = field(default_factory=list)
    first_choice: list[Ints] = field(default_factory=list)
    selected: int = 0
    engine_agreement: float = float("nan")
    train_points: list[tuple[float, float]] = field(default_factory=list)


def _run(side: Side, policy: str, em: Emulated) -> RoutedRun:
    rows = side.rows
    return RoutedRun(
        policy=policy,
        rows=rows,
        model=em.served,
        cost=em.cost,
        quality=np.nan_to_num(side.data.quality[rows, em.served]),
        attempts=em.step,
        failed=0,
    )


async def run_cascades(
    train: Side, test: Side, split: str, best: str, size: int, seed: int = 0
) -> CascadeResult:
    """Build and choose on `train`, sweep `test`, replay the operating point."""
    pool = candidates(train.data, train.rows, best)
    train_answers, test_answers = Answers(train.data), Answers(test.data)
    return await choose_and_sweep(
        CascadeResult(split, best),
        pool,
        lambda c: emulate(c, train.data, train_answers, train.rows),
        lambda c: emulate(c, test.data, test_answers, test.rows),
        train,
        test,
        size,
        seed,
    )


async def choose_and_sweep(
    result: CascadeResult,
    pool: Sequence[Level],
    on_train: Callable[[Any], Emulated],
    on_test: Callable[[Any], Emulated],
    train: Side,
    test: Side,
    size: int,
    seed: int,
) -> CascadeResult:
    """The family's levels on the training frontier, its operating point (the
    cheapest level reaching the best single model's training quality), every level
    on the test prompts, and the operating point replayed through the Engine."""
    if not pool:
        return result
    ems = [on_train(c) for c in pool]
    data, rows, best = train.data, train.rows, result.best
    points = [(float(e.cost.mean()), float(np.nanmean(data.quality[rows, e.served]))) for e in ems]
    best_cost = float(np.nanmean(data.cost_usd[rows, data.model_index(best)]))
    best_quality = float(np.nanmean(data.quality[rows, data.model_index(best)]))
    picked = frontier_levels(points, size, best_cost)
    result.levels = [pool[i] for i in picked]
    result.train_points = [points[i] for i in picked]
    reaching = [k for k, i in enumerate(picked) if points[i][1] >= best_quality]
    result.selected = reaching[0] if reaching else int(np.argmax([points[i][1] for i in picked]))
    for k, cand in enumerate(result.levels):
        em = on_test(cand)
        result.runs.append(_run(test, f"{result.family}#{k}", em))
        result.steps.append(em.step)
        result.first_choice.append(em.first_choice)
    await _replay(test, result, seed)
    return result


async def _replay(test: Side, result: CascadeResult, seed: int) -> None:
    chosen = result.levels[result.selected]
    policy = f"{result.family}#{result.selected}"
    async with ReplayHarness(test.data, {policy: chosen.settings()}, seed=seed) as harness:
        await harness.run(policy, test.rows)
        engine = (await harness.results())[policy]
    swept = result.runs[result.selected]
    order = np.argsort(engine.rows, kind="stable")
    same = engine.model[order] == swept.model[np.argsort(swept.rows, kind="stable")]
    result.engine_agreement = float(same.mean())
    result.runs[result.selected] = engine


__all__ = [
    "Candidate",
    "CascadeResult",
    "Level",
    "candidates",
    "cheap_pool",
    "choose_and_sweep",
    "emulate",
    "run_cascades",
]
