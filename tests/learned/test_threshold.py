"""The `threshold` policy (RouteLLM two-model mode): strong when the predicted gap
beats the threshold, weak otherwise, the other as fallback; strict settings."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from modelyard.catalog.cards import ModelCard
from modelyard.catalog.catalog import build_catalog
from modelyard.engine import build_policies
from modelyard.errors import ConfigError
from modelyard.routing.plan import Decision, Score
from modelyard.routing.router import Router
from modelyard.routing.scorers import PriorScorer
from modelyard.routing.threshold import ThresholdPolicy
from modelyard.types import ChatRequest, Requirements
from tests.stack import ENV, STACK, stack_config


class FixedQuality:
    """Prior costs and latencies, with the quality of each model set by the test."""

    version = "fixed-test"

    def __init__(self, quality: dict[str, float]) -> None:
        self.quality = quality

    def score(
        self, request: ChatRequest, req: Requirements, cards: Sequence[ModelCard]
    ) -> list[Score]:
        scores = PriorScorer().score(request, req, cards)
        return [
            replace(s, quality=self.quality.get(c.id, 0.0))
            for c, s in zip(cards, scores, strict=True)
        ]


def decide(quality: dict[str, float], threshold: float, **body: Any) -> Decision:
    policy = {"type": "threshold", "strong": "best-model", "weak": "small", "threshold": threshold}
    config = stack_config(policies={**STACK["policies"], "pair": policy})
    router = Router(
        build_catalog(config, ENV), build_policies(config), "pair", FixedQuality(quality)
    )
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    return router.plan(ChatRequest.model_validate({"model": "pair", **body}), random.Random(0))


def order(decision: Decision) -> list[str]:
    return [c.card.id for c in decision.candidates]


def test_strong_first_when_the_predicted_gap_beats_the_threshold() -> None:
    decision = decide({"frontier": 0.9, "small": 0.6}, threshold=0.2)
    assert order(decision) == ["frontier", "small"]  # the alias best-model resolved
    assert decision.kind == "fallback"
    assert "predicted gap +0.300" in decision.candidates[0].reason
    assert "> threshold 0.2" in decision.candidates[0].reason
    rejected = {r.model_id: r.reason for r in decision.rejected}
    assert rejected["vision-mid"].startswith("not the strong")


def test_weak_first_when_the_gap_is_within_the_threshold() -> None:
    # Exactly at the threshold (0.75 - 0.5 = 0.25 in binary too) is not above it.
    decision = decide({"frontier": 0.75, "small": 0.5}, threshold=0.25)
    assert order(decision) == ["small", "frontier"]
    assert "<= threshold 0.25" in decision.candidates[0].reason
    # A weak model predicted better than the strong one always stays first.
    assert order(decide({"frontier": 0.5, "small": 0.7}, threshold=-0.1)) == ["small", "frontier"]


def test_raising_the_threshold_never_sends_more_to_the_strong_model() -> None:
    gaps = [-0.4, -0.1, 0.0, 0.05, 0.2, 0.5]
    shares = []
    for threshold in [-1.0, -0.2, 0.0, 0.1, 0.3, 1.0]:
        strong = sum(
            order(decide({"frontier": 0.5 + g, "small": 0.5}, threshold))[0] == "frontier"
            for g in gaps
        )
        shares.append(strong)
    assert shares == sorted(shares, reverse=True)
    assert shares[0] == len(gaps)
    assert shares[-1] == 0


def test_when_one_of_the_pair_cannot_serve_the_other_serves_alone() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
    decision = decide(
        {"frontier": 0.5, "small": 0.9},
        threshold=0.0,
        messages=[{"role": "user", "content": [image]}],
    )
    assert order(decision) == ["frontier"]
    assert decision.kind == "single"
    assert {"model_id": "small", "reason": "lacks vision"} in [
        {"model_id": r.model_id, "reason": r.reason} for r in decision.rejected
    ]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"strong": "frontier", "weak": "frontier"}, "different models"),
        ({"strong": "frontier", "weak": "small", "threshold": 2}, "threshold"),
        ({"strong": "frontier", "weak": "small", "lambda": 1}, "lambda"),
        ({"strong": "frontier"}, "weak"),
        ({"strong": "gpt-9", "weak": "small"}, "policies.pair.strong: refers to model 'gpt-9'"),
    ],
)
def test_settings_are_strict(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        stack_config(policies={**STACK["policies"], "pair": {"type": "threshold", **settings}})


def test_settings_model_is_the_registered_policy() -> None:
    s = ThresholdPolicy.Settings(strong="a", weak="b", threshold=0.1, hedge_after_ms=500)
    assert s.hedge_after_ms == 500
