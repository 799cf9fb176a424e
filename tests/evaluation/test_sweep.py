"""The vectorised sweep picks what the Engine picks; baselines; the paired bootstrap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.evaluation.bootstrap import Curve, aiq_between, paired_interval, resamples
from modelyard.evaluation.families import (
    FloorFamily,
    Predictions,
    ThresholdFamily,
    UtilityFamily,
    knobs,
)
from modelyard.evaluation.harness import ReplayHarness, RoutedRun
from modelyard.evaluation.plans import family_key, match_models
from modelyard.evaluation.sweep import predictions
from modelyard.learned.baselines import fit_baseline
from modelyard.learned.outcomes import load_outcomes
from modelyard.routing.plan import Score
from tests.evaluation.tiny import write_topic_jsonl


class NoisyScorer:
    """Per prompt, a fixed pseudo-random quality per model (ties included, on purpose)."""

    version = "noisy"

    def score(self, request, req, cards):  # type: ignore[no-untyped-def]
        seed = sum(ord(ch) for ch in request.messages[-1].text())
        rng = np.random.default_rng(seed)
        levels = rng.choice([0.2, 0.5, 0.5, 0.8], size=len(cards))
        return [
            Score(float(q), c.prices.estimate(req.prompt_tokens, 80), 100.0)
            for q, c in zip(levels, cards, strict=True)
        ]


@pytest.fixture
def topics(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_outcomes(write_topic_jsonl(tmp_path / "topics.jsonl", per_topic=12))


async def test_every_family_chooses_what_the_engine_chooses(topics) -> None:  # type: ignore[no-untyped-def]
    rows = np.arange(len(topics))
    families = [UtilityFamily(), FloorFamily(), ThresholdFamily("frontier", "tiny")]
    async with ReplayHarness(topics, scorer=NoisyScorer()) as probe:
        pred = await predictions(probe, rows)
    grids = {f.name: knobs(f, pred, 6) for f in families}
    policies = {k.policy: k.settings for ks in grids.values() for k in ks}
    async with ReplayHarness(topics, policies, scorer=NoisyScorer()) as harness:
        for ks in grids.values():
            for knob in ks:
                await harness.run(knob.policy, rows)
        runs = await harness.results()
    checked = 0
    for family in families:
        for knob in grids[family.name]:
            swept = family.choose(pred, knob.value)
            np.testing.assert_array_equal(runs[knob.policy].model, swept, err_msg=knob.policy)
            checked += len(set(swept.tolist())) > 1
    assert checked >= 3  # the knobs really move the choices


def test_floor_falls_back_to_the_best_predicted_when_nothing_clears_it() -> None:
    pred = Predictions(
        ("a", "b", "c"),
        np.array([[0.2, 0.6, 0.6], [0.9, 0.95, 0.1]]),
        np.array([[1.0, 2.0, 0.5], [1.0, 2.0, 0.5]]),
    )
    # Row 0: nothing >= 0.7, best predicted is b or c (0.6), cheaper c wins.
    # Row 1: a and b clear 0.7; cheapest is a.
    assert FloorFamily().choose(pred, 0.7).tolist() == [2, 0]
    # Utility ties go to the smaller id, as UtilityPolicy sorts them.
    tie = Predictions(("z", "y"), np.array([[0.5, 0.5]]), np.array([[0.0, 0.0]]))
    assert UtilityFamily().choose(tie, 1.0).tolist() == [1]


def test_family_keys_match_snapshots_and_servings_of_one_model() -> None:
    assert family_key("gpt-4o-2024-05-13") == "gpt-4o"
    assert family_key("gemini-1.5-flash-002") == "gemini-1.5-flash"
    assert family_key("llama-3.1-405b-instruct-fp8@together") == "llama-3.1-405b-instruct"
    assert family_key("Mixtral-8x7B-Instruct-v0.1_concise") == "mixtral-8x7b-instruct-v0.1"
    assert family_key("claude-3-5-sonnet-20241022") == "claude-3-5-sonnet"
    matched = match_models(
        ["gpt-4o-2024-05-13", "gemini-1.5-pro-002", "llama-2-7b"],
        ["gemini-1.5-pro", "gpt-4o-2024-05-13", "gpt-4o-2024-08-06", "phi"],
    )
    # Exact names first; a family is matched once, by the first of its models.
    assert matched == {
        "gpt-4o-2024-05-13": "gpt-4o-2024-05-13",
        "gemini-1.5-pro": "gemini-1.5-pro-002",
    }


def test_category_baseline_reads_the_declared_task_and_shrinks_to_the_mean(topics) -> None:  # type: ignore[no-untyped-def]
    rows = np.arange(len(topics))
    category = fit_baseline("category", topics, rows)
    mean = fit_baseline("mean", topics, rows)
    col = topics.model_index("mathbot")
    math_q = category.quality_row("math")[col]
    poetry_q = category.quality_row("poetry")[col]
    # 12 prompts per topic, 5 pseudo-prompts of the overall mean (0.525).
    assert math_q == pytest.approx((12 * 0.95 + 5 * 0.525) / 17)
    assert poetry_q == pytest.approx((12 * 0.1 + 5 * 0.525) / 17)
    assert category.quality_row("unseen")[col] == pytest.approx(0.525)
    assert mean.quality_row("math")[col] == pytest.approx(0.525)
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("median", topics, rows)  # type: ignore[arg-type]


def _run(quality: list[float], cost: list[float]) -> RoutedRun:
    n = len(quality)
    return RoutedRun(
        "p", np.arange(n), np.zeros(n, dtype=np.int64), np.array(cost), np.array(quality),
        np.ones(n, dtype=np.int64), 0,
    )  # fmt: skip


def test_paired_bootstrap_separates_a_real_gain_from_noise() -> None:
    rng = np.random.default_rng(1)
    n = 400
    base_q = rng.integers(0, 2, n).astype(float)
    better_q = np.maximum(base_q, rng.random(n) < 0.3)  # right wherever base is, and more
    noise_q = np.where(rng.random(n) < 0.5, base_q, rng.integers(0, 2, n))
    cost = list(np.full(n, 0.0005))  # $0.5 per 1k: the AIQ range starts there
    base, better, noisy = (Curve.of([_run(list(q), cost)]) for q in (base_q, better_q, noise_q))
    samples = resamples(n, draws=300, seed=0)
    stat = aiq_between(0.5, 2.0)
    gain = paired_interval(better, base, stat, samples)
    assert gain["better"]
    assert gain["low"] > 0
    assert gain["estimate"] == pytest.approx(better_q.mean() - base_q.mean())
    tie = paired_interval(noisy, base, stat, samples)
    assert not tie["better"]
    assert not tie["worse"]
    assert tie["low"] < 0 < tie["high"]
    with pytest.raises(ValueError, match="same prompts"):
        paired_interval(base, Curve.of([_run([1.0], [0.1])]), stat, samples)
