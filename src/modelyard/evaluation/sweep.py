"""One router on one split: train, calibrate and pick knobs on the training side,
then replay the test prompts through the Engine at every knob value.

The scorer is trained on the training prompts (searching its hyper-parameters by
cross-validation there); its predictions on those prompts place the knob grids (see
`families`). The training side is then split again (`inner_split`): a scorer with the
same hyper-parameters, trained on the inner part, replays the validation prompts at
every knob, which picks each N-model family's operating point — the cheapest knob
whose validation quality reaches the best single model's (that model, too, chosen on
the training prompts). Finally the first scorer is swept over the grid on the test
prompts. The test prompts are only ever replayed, never looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.embeddings import Encoder
from modelyard.evaluation.families import (
    Family,
    FloorFamily,
    Knob,
    Predictions,
    ThresholdFamily,
    UtilityFamily,
    knobs,
)
from modelyard.evaluation.harness import MemoScorer, ReplayHarness, RoutedRun
from modelyard.evaluation.splits import inner_split
from modelyard.learned.outcomes import OutcomeSet
from modelyard.routing.scorers import Scorer

Ints = npt.NDArray[np.int64]
ScorerFactory = Callable[[str, OutcomeSet, Ints, Encoder, int, dict[str, Any] | None], Scorer]
# Hyper-parameter search inside `train_scorer`: cross-validation folds on the training
# prompts (3 keeps a full evaluation within minutes; the search is per split).
SEARCH_FOLDS = 3


def learned_scorer(
    kind: str,
    data: OutcomeSet,
    rows: Ints,
    encoder: Encoder,
    seed: int,
    params: dict[str, Any] | None,
) -> Scorer:
    """A `modelyard.learned` scorer of `kind` trained on `rows` of `data`: with a
    hyper-parameter search by cross-validation on those rows, or with `params` fixed."""
    from modelyard.learned.train import train_scorer

    if params is None:
        return train_scorer(kind, data, rows, encoder=encoder, seed=seed, folds=SEARCH_FOLDS)  # type: ignore[arg-type]
    return train_scorer(kind, data, rows, encoder=encoder, seed=seed, folds=0, **params)  # type: ignore[arg-type]


def tuned_params(scorer: Scorer) -> dict[str, Any] | None:
    """The hyper-parameters a learned scorer ended up with (None for other scorers)."""
    manifest = getattr(scorer, "manifest", None)
    params = getattr(manifest, "params", None)
    return dict(params) if isinstance(params, dict) else None


@dataclass(frozen=True, slots=True)
class Side:
    """Rows of a dataset: where a router trains, or where it is tested."""

    data: OutcomeSet
    rows: Ints


@dataclass(frozen=True)
class RouterTask:
    """Everything one worker needs to evaluate one router on one split."""

    router: str
    split: str
    train: Side
    test: Side
    encoder: Encoder
    pairs: tuple[tuple[str, str, str], ...]  # (label, strong, weak), chosen on training side
    best_model: str  # the best single model on the training prompts
    seed: int = 0
    knobs: int = 16
    factory: ScorerFactory = learned_scorer


@dataclass
class RouterResult:
    """Test-side runs per family (one per knob, grid order) and the chosen knobs."""

    router: str
    split: str
    scorer_version: str
    knobs: dict[str, list[Knob]] = field(default_factory=dict)
    runs: dict[str, list[RoutedRun]] = field(default_factory=dict)
    selected: dict[str, int] = field(default_factory=dict)
    validation: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def families_for(task: RouterTask) -> list[Family]:
    """N-model families plus one threshold family per strong/weak pair."""
    fams: list[Family] = [UtilityFamily(), FloorFamily()]
    fams += [ThresholdFamily(strong, weak, label) for label, strong, weak in task.pairs]
    return fams


# Families whose operating point is chosen on the validation prompts (N-model ones).
SELECTED = ("utility", "floor")


async def predictions(harness: ReplayHarness, rows: Sequence[int] | Ints) -> Predictions:
    """The Engine's dry-run decision for each prompt (`best` ranks every model),
    read as predicted quality and expected cost per model."""
    models = harness.data.models
    column = {m: j for j, m in enumerate(models)}
    quality = np.full((len(rows), len(models)), np.nan)
    cost = np.full((len(rows), len(models)), np.nan)
    for i, row in enumerate(rows):
        decision = harness.engine.route(harness.request(int(row), "best"))
        for c in decision.candidates:
            quality[i, column[c.card.id]] = c.score.quality
            cost[i, column[c.card.id]] = float(c.score.expected_cost_usd)
    return Predictions(models, quality, cost)


def choose(points: list[tuple[float, float]], target: float) -> int:
    """The cheapest point whose quality reaches `target`; else the best (cheaper on ties)."""
    reaching = [i for i, (cost, quality) in enumerate(points) if quality >= target]
    if reaching:
        return min(reaching, key=lambda i: (points[i][0], -points[i][1]))
    return max(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))


async def run_router(task: RouterTask, clock: Callable[[], float]) -> RouterResult:
    """Train (searching hyper-parameters on the training prompts), then calibrate and
    select on the training side's validation prompts, then sweep the test prompts."""
    t0 = clock()
    train, test = task.train, task.test
    scorer = MemoScorer(
        task.factory(task.router, train.data, train.rows, task.encoder, task.seed, None)
    )
    # The validation scorer reuses the search's choice: the search saw only training rows.
    inner, val = inner_split(train.rows, task.seed)
    val_scorer = MemoScorer(
        task.factory(
            task.router, train.data, inner, task.encoder, task.seed, tuned_params(scorer.inner)
        )
    )
    t1 = clock()
    result = RouterResult(task.router, task.split, scorer.version)
    result.knobs, policies = await _calibrate(task, scorer, train.rows)
    await _select(task, val_scorer, val, policies, result)
    async with ReplayHarness(test.data, policies, scorer=scorer, seed=task.seed) as harness:
        for ks in result.knobs.values():
            for knob in ks:
                await harness.run(knob.policy, test.rows)
        runs = await harness.results()
    result.runs = {name: [runs[k.policy] for k in ks] for name, ks in result.knobs.items()}
    result.seconds = {"train": t1 - t0, "replay": clock() - t1}
    return result


async def _calibrate(
    task: RouterTask, scorer: Scorer, rows: Ints
) -> tuple[dict[str, list[Knob]], dict[str, dict[str, Any]]]:
    """Knob grids placed from the scorer's predictions on training prompts (Engine dry
    runs). The test-side scorer's own predictions: a grid placed from another model's
    (the validation scorer's) can miss the range the test-side scorer predicts in."""
    async with ReplayHarness(task.train.data, scorer=scorer, seed=task.seed) as probe:
        pred = await predictions(probe, rows)
    grids = {fam.name: knobs(fam, pred, task.knobs) for fam in families_for(task)}
    policies = {k.policy: k.settings for ks in grids.values() for k in ks}
    return grids, policies


async def _select(
    task: RouterTask,
    scorer: Scorer,
    val: Ints,
    policies: dict[str, dict[str, Any]],
    result: RouterResult,
) -> None:
    """Replay the validation prompts at every knob of the N-model families and keep the
    cheapest knob that reaches the best single model's validation quality."""
    async with ReplayHarness(task.train.data, policies, scorer=scorer, seed=task.seed) as h:
        for name in SELECTED:
            for knob in result.knobs[name]:
                await h.run(knob.policy, val)
        await h.run(task.best_model, val)
        runs = await h.results()
    target = float(runs[task.best_model].quality.mean())
    for name in SELECTED:
        points = [
            (float(runs[k.policy].cost.mean()), float(runs[k.policy].quality.mean()))
            for k in result.knobs[name]
        ]
        result.validation[name] = points
        result.selected[name] = choose(points, target)


async def run_singles(data: OutcomeSet, rows: Sequence[int], seed: int = 0) -> dict[str, RoutedRun]:
    """Every model answering every prompt in `rows`, each request through the Engine
    (the model id as `model` resolves to a fixed policy)."""
    async with ReplayHarness(data, seed=seed) as harness:
        for model in data.models:
            await harness.run(model, rows)
        return await harness.results()
