"""One router on one split: train, calibrate and pick knobs on the training side,
then sweep the test prompts at every knob value and replay the chosen operating points
through the Engine.

The scorer is trained on the training prompts (searching its hyper-parameters by
cross-validation there); its predictions on those prompts place the knob grids (see
`families`). The training side is then split again (`inner_split`): a scorer with the
same hyper-parameters, trained on the inner part, predicts the validation prompts,
which picks each N-model family's operating point — the cheapest knob whose
validation quality reaches the best single model's (that model, too, chosen on the
training prompts). The test prompts are only ever routed, never looked at.

Every prediction is the Engine's own dry-run decision (`Engine.route`), so the
policies see what a server would show them. The sweep over every knob is vectorised
(`Family.choose`); each reported operating point (the selected knob of every N-model
family) is then replayed prompt by prompt through `Engine.complete`, its figures are
read back from the ledger, and the Engine's choices are checked against the sweep's:
a mismatch is reported (`engine_agreement`), never papered over.
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
from modelyard.learned.defaults import SEARCH_FOLDS
from modelyard.learned.outcomes import OutcomeSet
from modelyard.routing.scorers import Scorer

Ints = npt.NDArray[np.int64]
ScorerFactory = Callable[[str, OutcomeSet, Ints, Encoder, int, dict[str, Any] | None], Scorer]


def learned_scorer(
    kind: str,
    data: OutcomeSet,
    rows: Ints,
    encoder: Encoder,
    seed: int,
    params: dict[str, Any] | None,
) -> Scorer:
    """A `modelyard.learned` scorer of `kind` trained on `rows` of `data`: with a
    hyper-parameter search by cross-validation on those rows, or with `params` fixed.
    The baselines `mean` and `category` (see `learned.baselines`) have nothing to
    search."""
    from modelyard.learned.baselines import BASELINES, fit_baseline
    from modelyard.learned.train import train_scorer

    if kind in BASELINES:
        return fit_baseline(kind, data, rows)

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
    # Per selected family: share of test prompts where the Engine chose as the sweep did.
    engine_agreement: dict[str, float] = field(default_factory=dict)
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
    """Train (searching hyper-parameters on the training prompts), calibrate and select
    on the training side, sweep the test prompts, replay the operating points."""
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
    families = families_for(task)
    async with ReplayHarness(train.data, scorer=scorer, seed=task.seed) as probe:
        result.knobs = {
            f.name: knobs(f, await predictions(probe, train.rows), task.knobs) for f in families
        }
    async with ReplayHarness(train.data, scorer=val_scorer, seed=task.seed) as probe:
        _select(task, families, await predictions(probe, val), val, result)
    policies = {k.policy: k.settings for ks in result.knobs.values() for k in ks}
    async with ReplayHarness(test.data, policies, scorer=scorer, seed=task.seed) as harness:
        pred = await predictions(harness, test.rows)
        result.runs = {
            f.name: [
                sweep_run(test, k.policy, f.choose(pred, k.value)) for k in result.knobs[f.name]
            ]
            for f in families
        }
        await _replay_operating_points(harness, test.rows, result)
    result.seconds = {"train": t1 - t0, "replay": clock() - t1}
    return result


def sweep_run(side: Side, policy: str, column: Ints) -> RoutedRun:
    """What the policy's choices cost and scored, from the recorded outcomes."""
    rows = side.rows
    return RoutedRun(
        policy=policy,
        rows=rows,
        model=column,
        cost=np.nan_to_num(side.data.cost_usd[rows, column]),
        quality=np.nan_to_num(side.data.quality[rows, column]),
        attempts=np.ones(len(rows), dtype=np.int64),
        failed=0,
    )


def _select(
    task: RouterTask, families: list[Family], pred: Predictions, val: Ints, result: RouterResult
) -> None:
    """At every knob of the N-model families, the validation prompts' routed quality and
    cost; keep the cheapest knob that reaches the best single model's quality there."""
    data = task.train.data
    side = Side(data, val)
    target = float(np.nanmean(data.quality[val, data.model_index(task.best_model)]))
    for family in families:
        if family.name not in SELECTED:
            continue
        points = []
        for knob in result.knobs[family.name]:
            run = sweep_run(side, knob.policy, family.choose(pred, knob.value))
            points.append((float(run.cost.mean()), float(run.quality.mean())))
        result.validation[family.name] = points
        result.selected[family.name] = choose(points, target)


async def _replay_operating_points(
    harness: ReplayHarness, rows: Ints, result: RouterResult
) -> None:
    """Each selected knob, prompt by prompt through `Engine.complete`; its run is
    replaced by the ledger's, and the share of prompts where the Engine picked what
    the vectorised sweep picked is recorded."""
    for name, index in result.selected.items():
        await harness.run(result.knobs[name][index].policy, rows)
    runs = await harness.results()
    for name, index in result.selected.items():
        swept = result.runs[name][index]
        engine = runs[result.knobs[name][index].policy]
        result.engine_agreement[name] = float(np.mean(engine.model == swept.model))
        result.runs[name][index] = engine


async def run_singles(
    data: OutcomeSet, rows: Sequence[int], seed: int = 0, models: Sequence[str] | None = None
) -> dict[str, RoutedRun]:
    """Every model (or those in `models`) answering every prompt in `rows`, each
    request through the Engine (the model id as `model` resolves to a fixed policy)."""
    async with ReplayHarness(data, seed=seed) as harness:
        for model in data.models if models is None else models:
            await harness.run(model, rows)
        return await harness.results()
