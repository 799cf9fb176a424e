"""Scorers predict, per request and per model, quality, cost and latency.

`PriorScorer` uses the model cards' priors. Learned quality predictors implement
the same protocol and are registered under `modelyard.scorers`; their `version`
is written on every ledger record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from modelyard.catalog.cards import ModelCard
from modelyard.catalog.tokens import scale_for_family
from modelyard.routing.plan import Score
from modelyard.types import ChatRequest, Requirements

# Without a caller cap, expect an answer of about this many tokens: the median
# chat completion is a few hundred tokens, and an estimate that is too low would
# make expensive models look cheaper than they are.
EXPECTED_OUTPUT_TOKENS = 512


class Scorer(Protocol):
    """Predicts how well, how cheaply and how fast each model would answer."""

    version: str

    def score(
        self, request: ChatRequest, req: Requirements, cards: Sequence[ModelCard]
    ) -> list[Score]:
        """One `Score` per card, in the same order. Pure: no I/O."""
        ...


def expected_output_tokens(req: Requirements) -> int:
    cap = req.max_output_tokens
    return min(cap, EXPECTED_OUTPUT_TOKENS) if cap else EXPECTED_OUTPUT_TOKENS


class PriorScorer:
    """Scores from the cards' quality and latency priors and their list prices."""

    version = "priors-v1"

    def score(
        self, request: ChatRequest, req: Requirements, cards: Sequence[ModelCard]
    ) -> list[Score]:
        out_tokens = expected_output_tokens(req)
        return [
            Score(
                quality=card.quality.for_task(req.task),
                expected_cost_usd=card.prices.estimate(
                    scale_for_family(req.prompt_tokens, card.family), out_tokens
                ),
                expected_latency_ms=card.latency.expected_ms(out_tokens),
            )
            for card in cards
        ]
