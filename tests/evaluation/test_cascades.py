"""Agreement cascades in the harness: the sweep's verdicts are the runner's."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.evaluation.cascades import Answers, Candidate, emulate, frontier_levels, run_cascades
from modelyard.evaluation.harness import ReplayHarness
from modelyard.evaluation.sweep import Side
from modelyard.learned.outcomes import OutcomePrompt, OutcomeSet

MODELS = ("a", "b", "c", "big")


def voting_outcomes(n: int = 40, seed: int = 0) -> OutcomeSet:
    """Three cheap models that answer a 4-way question (right about 60% of the time,
    independently) and a dear one that is always right."""
    rng = np.random.default_rng(seed)
    prompts = tuple(
        OutcomePrompt(str(i), ({"role": "user", "content": f"question {i}"},), "quiz")
        for i in range(n)
    )
    gold = rng.integers(0, 4, n)
    answers = np.where(rng.random((n, 3)) < 0.6, gold[:, None], rng.integers(0, 4, (n, 3)))
    quality = np.concatenate([(answers == gold[:, None]).astype(float), np.ones((n, 1))], axis=1)
    preds = {(str(i), m): "ABCD"[answers[i, j]] for i in range(n) for j, m in enumerate(MODELS[:3])}
    preds |= {(str(i), "big"): "ABCD"[gold[i]] for i in range(n)}
    preds.pop(("3", "b"))  # a missing parse agrees with nobody
    cost = np.tile([0.0001, 0.0002, 0.0003, 0.01], (n, 1))
    tokens = np.full((n, 4), 10, dtype=np.int64)
    return OutcomeSet(
        "votes", prompts, MODELS, quality, cost, tokens, tokens,
        preds=preds, answers={str(i): "ABCD"[gold[i]] for i in range(n)},
    )  # fmt: skip


CANDIDATES = [
    Candidate(("a", "b"), 2, None, "big"),
    Candidate(("a", "b", "c"), 2, None, "big"),
    Candidate(("a", "b", "c"), 3, None, "big"),
    Candidate(("a", "b"), 2, "c", "big"),
    Candidate(("c",), 0, None, None),
]


@pytest.mark.parametrize("candidate", CANDIDATES, ids=lambda c: c.name)
async def test_the_sweep_serves_and_bills_what_the_engine_does(candidate: Candidate) -> None:
    data = voting_outcomes()
    rows = np.arange(len(data))
    swept = emulate(candidate, data, Answers(data), rows)
    async with ReplayHarness(data, {"casc": candidate.settings()}) as harness:
        await harness.run("casc", rows)
        engine = (await harness.results())["casc"]
    np.testing.assert_array_equal(engine.model, swept.served)
    np.testing.assert_allclose(engine.cost, swept.cost, rtol=1e-6)
    if candidate.last is not None:
        assert 0 < (swept.step > 1).mean() < 1  # some accepted cheaply, some escalated


def test_frontier_levels_take_the_best_point_within_each_cost_level() -> None:
    points = [(1.0, 0.5), (2.0, 0.4), (3.0, 0.7), (10.0, 0.9)]
    levels = frontier_levels(points, 4, 10.0)
    assert len(levels) == 4
    assert levels[0] == 0
    assert levels[-1] == 3
    assert 1 not in levels  # dearer and worse than point 0: never on the frontier


async def test_a_cascade_is_chosen_on_the_training_side_and_replayed() -> None:
    data = voting_outcomes(80, seed=1)
    train = Side(data, np.arange(50))
    test = Side(data, np.arange(50, 80))
    result = await run_cascades(train, test, "split", "big", size=6)
    assert len(result.levels) == len(result.runs) == 6
    chosen = result.levels[result.selected]
    # The dear model is always right, so only a cascade ending in it can match it.
    assert chosen.last == "big"
    assert result.engine_agreement == 1.0
    assert result.runs[result.selected].policy == f"cascade#{result.selected}"


def answered_outcomes(n: int = 60, seed: int = 2) -> OutcomeSet:
    """A cheap model whose good answers say so and whose bad ones hedge, and a dear one
    that is always right: a learned verifier can tell them apart."""
    rng = np.random.default_rng(seed)
    prompts = tuple(
        OutcomePrompt(str(i), ({"role": "user", "content": f"explain topic {i % 9}"},), "t")
        for i in range(n)
    )
    good = rng.random(n) < 0.6
    quality = np.stack([good.astype(float), np.ones(n)], axis=1)
    responses = {
        (str(i), "cheap"): (
            f"topic {i % 9} explained clearly. Confidence: 90%"
            if good[i]
            else "hmm not sure, maybe. Confidence: 20%"
        )
        for i in range(n)
    } | {(str(i), "dear"): f"a careful answer about topic {i % 9}" for i in range(n)}
    cost = np.tile([0.0001, 0.01], (n, 1))
    tokens = np.full((n, 2), 10, dtype=np.int64)
    return OutcomeSet(
        "answered", prompts, ("cheap", "dear"), quality, cost, tokens, tokens, responses
    )


async def test_learned_verifier_cascades_are_trained_on_the_training_side_and_replayed() -> None:
    pytest.importorskip("sklearn")
    from modelyard.evaluation.verified import run_learned_cascades

    data = answered_outcomes()
    train, test = Side(data, np.arange(40)), Side(data, np.arange(40, 60))
    result = await run_learned_cascades(train, test, "split", "dear", size=5)
    assert result.family == "cascade-learned"
    assert len(result.runs) == 5
    chosen = result.levels[result.selected]
    assert chosen.last == "dear"
    # The Engine, running the trained artifact, served what the sweep said it would.
    assert result.engine_agreement == 1.0
    run = result.runs[result.selected]
    # Cheap good answers are accepted, hedged ones escalated: quality of the dear
    # model at a fraction of its cost.
    assert run.quality.mean() == 1.0
    assert run.cost.mean() < 0.01
