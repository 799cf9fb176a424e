"""A learned scorer inside Router.plan: the quality-floor and utility policies use its
per-request predictions, unknown cards keep their priors, conversations count whole."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from modelyard.catalog.catalog import build_catalog  # noqa: E402
from modelyard.catalog.tokens import scale_for_family  # noqa: E402
from modelyard.embeddings import HashingEncoder, conversation_text  # noqa: E402
from modelyard.engine import build_policies  # noqa: E402
from modelyard.learned.scorer import LearnedScorer, load_scorer  # noqa: E402
from modelyard.learned.train import train_scorer  # noqa: E402
from modelyard.routing.plan import Decision  # noqa: E402
from modelyard.routing.router import Router  # noqa: E402
from modelyard.routing.scorers import PriorScorer  # noqa: E402
from modelyard.types import ChatRequest  # noqa: E402
from tests.learned.synth import topic_outcomes  # noqa: E402
from tests.stack import ENV, STACK, stack_config  # noqa: E402

CODE = "python function has a bug in the loop, compile error"
POEM = "write a sonnet with rhyme about the moon"
MATH = "prove this theorem about the integral of a matrix"
POLICIES = {
    **STACK["policies"],
    "floor": {"type": "cheapest", "min_quality": 0.6},
    "value": {"type": "utility", "lambda_cost": 50},
}


@pytest.fixture(scope="module")
def scorer() -> LearnedScorer:
    data = topic_outcomes(n=90)
    return train_scorer(
        "knn", data, encoder=HashingEncoder(64), folds=0, k=10, temperature=0.2, prior_weight=0.5
    )


def router(scorer: Any) -> Router:
    config = stack_config(policies=POLICIES)
    return Router(build_catalog(config, ENV), build_policies(config), "value", scorer)


def plan(scorer: Any, policy: str, content: str | list[dict[str, Any]]) -> Decision:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    request = ChatRequest.model_validate({"model": policy, "messages": messages})
    return router(scorer).plan(request, random.Random(1))


def first(decision: Decision) -> str:
    return decision.candidates[0].card.id


def test_quality_floor_picks_the_cheapest_model_predicted_good_enough(
    scorer: LearnedScorer,
) -> None:
    assert first(plan(scorer, "floor", CODE)) == "small"
    poem = plan(scorer, "floor", POEM)
    assert first(poem) == "vision-mid"
    reasons = {r.model_id: r.reason for r in poem.rejected}
    assert reasons["small"].startswith("predicted quality 0.")
    assert first(plan(scorer, "floor", MATH)) == "frontier"
    # With priors every prompt goes the same way; the learned scorer tells them apart.
    prior = {first(plan(PriorScorer(), "floor", p)) for p in (CODE, POEM, MATH)}
    assert len(prior) == 1


def test_utility_trades_predicted_quality_against_cost(scorer: LearnedScorer) -> None:
    assert first(plan(scorer, "value", CODE)) == "small"
    assert first(plan(scorer, "value", POEM)) == "vision-mid"
    decision = plan(scorer, "value", MATH)
    utilities = [
        c.score.quality
        - 50 * float(c.score.expected_cost_usd)
        - 0.01 * c.score.expected_latency_ms / 1000
        for c in decision.candidates
    ]
    assert utilities == sorted(utilities, reverse=True)
    assert decision.scorer_version == scorer.version


def test_scores_come_from_the_artifact_and_unknown_cards_keep_their_prior(
    scorer: LearnedScorer,
) -> None:
    decision = plan(scorer, "best", POEM)
    predicted = scorer.predict([conversation_text([{"role": "user", "content": POEM}])])[0]
    by_id = {c.card.id: c.score for c in decision.candidates}
    for j, model in enumerate(scorer.models):
        assert by_id[model].quality == pytest.approx(predicted[j])
    assert by_id["local-llm"].quality == 0.5  # its card's prior; the artifact never saw it
    # Expected cost uses the model's median answer length in the training data (400).
    frontier = next(c for c in decision.candidates if c.card.id == "frontier")
    prompt = decision.requirements.prompt_tokens
    tokens = scale_for_family(prompt, frontier.card.family)
    assert frontier.score.expected_cost_usd == frontier.card.prices.estimate(tokens, 400)
    assert frontier.score.expected_cost_usd < frontier.card.prices.estimate(tokens, 512)


def test_model_map_lets_a_card_use_another_name_in_the_artifact(
    scorer: LearnedScorer, tmp_path: Path
) -> None:
    scorer.save(tmp_path / "art")
    mapped = load_scorer(tmp_path / "art", model_map={"local-llm": "vision-mid"})
    scores = {c.card.id: c.score.quality for c in plan(mapped, "best", POEM).candidates}
    assert scores["local-llm"] == pytest.approx(scores["vision-mid"])
    assert scores["local-llm"] > 0.6


def test_a_conversation_is_scored_on_all_its_turns(scorer: LearnedScorer) -> None:
    turns = [
        {"role": "user", "content": CODE},
        {"role": "assistant", "content": "Here is a fix."},
        {"role": "user", "content": "and another one please"},
    ]
    scores = {c.card.id: c.score.quality for c in plan(scorer, "best", turns).candidates}
    whole = scorer.predict([conversation_text(turns)])[0]
    last_only = scorer.predict([conversation_text(turns[-1:])])[0]
    small = scorer.models.index("small")
    assert scores["small"] == pytest.approx(whole[small])
    assert scores["small"] != pytest.approx(last_only[small])
    assert scores["small"] > 0.6  # the code context makes the code model look good


@pytest.mark.parametrize(
    ("encoder_id", "name"),
    [
        ("all-MiniLM-L6-v2/gt-0.1.0/int8", "minilm-l6-v2"),
        ("all-MiniLM-L6-v2/gt-0.1.0", "minilm-l6-v2-fp32"),
        ("hashing-bow-64", "hashing-64"),
    ],
)
def test_encoder_names_guessed_from_ids_are_names_the_registry_opens(
    encoder_id: str, name: str
) -> None:
    from modelyard.embeddings import known_encoders
    from modelyard.learned.scorer import guess_encoder_name

    assert guess_encoder_name(encoder_id) == name
    assert name in known_encoders() or name.startswith("hashing-")
