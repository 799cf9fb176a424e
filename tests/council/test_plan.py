"""The council policy: validated at load, planned purely by the router."""

from __future__ import annotations

import random
from typing import Any

import pytest

from modelyard.errors import ConfigError
from modelyard.ledger import InMemoryLedger
from modelyard.types import ChatRequest
from tests.cascade.helpers import ask, cascade_config, engine_for
from tests.council.helpers import council


def plan(policies: dict[str, Any], **extra: Any) -> Any:
    engine = engine_for({}, InMemoryLedger(), policies)
    return engine.router.plan(ask("council", **extra), random.Random(1))


def test_an_explicit_council_plans_one_parallel_step_of_members() -> None:
    decision = plan(council())
    assert decision.kind == "council"
    assert decision.council is not None
    assert [[c.card.id for c in s] for s in decision.council.members.slots] == [
        ["small"],
        ["vision-mid"],
        ["frontier"],
    ]
    explained = decision.explain()["council"]
    assert explained["adjudicator"] == "vote"
    assert explained["planned_members"] == [["small"], ["vision-mid"], ["frontier"]]


def test_a_member_with_its_own_fallback_keeps_it() -> None:
    decision = plan(council(["small", {"model": "vision-mid", "fallback": ["local-llm"]}]))
    slots = [[c.card.id for c in s] for s in decision.council.members.slots]
    assert slots == [["small"], ["vision-mid", "local-llm"]]


def test_router_chosen_members_are_the_best_of_distinct_families() -> None:
    decision = plan(council({"count": 3, "diverse_families": True}))
    slots = [[c.card.id for c in s] for s in decision.council.members.slots]
    # Only two families in the test stack (openai, anthropic): two members, each
    # with the unchosen models dealt as fallback, none repeated.
    assert [s[0] for s in slots] == ["frontier", "vision-mid"]
    flat = [m for s in slots for m in s]
    assert len(flat) == len(set(flat)) == 4
    assert any("2 of 3 members qualified from distinct families" in n for n in decision.notes)


def test_without_diversity_the_top_three_answer() -> None:
    decision = plan(council({"count": 3, "diverse_families": False}))
    primaries = [s[0].card.id for s in decision.council.members.slots]
    assert primaries == ["frontier", "vision-mid", "small"]


def test_an_unqualified_member_is_dropped_with_its_reason() -> None:
    image = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
    ]
    decision = plan(council(), messages=[{"role": "user", "content": image}])
    assert [s[0].card.id for s in decision.council.members.slots] == ["vision-mid", "frontier"]
    assert any(n.startswith("council member small dropped:") for n in decision.notes)


def test_a_council_with_one_qualified_member_degrades_to_a_single_route() -> None:
    image = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
    ]
    decision = plan(council(["small", "vision-mid"]), messages=[{"role": "user", "content": image}])
    assert decision.council is None
    assert decision.kind == "single"
    assert [c.card.id for c in decision.candidates] == ["vision-mid"]
    assert any(
        "council degraded to a single route: 1 qualified member" in n for n in decision.notes
    )


def test_a_budget_drops_the_dearest_members_first() -> None:
    engine = engine_for({}, InMemoryLedger(), council())
    probe = engine.router.plan(ask("council"), random.Random(1))
    costs = {c.card.id: c.score.expected_cost_usd for c in probe.candidates}
    budget = costs["small"] + costs["vision-mid"]
    request = ask("council", modelyard={"max_cost_usd": str(budget)})
    decision = engine.router.plan(request, random.Random(1))
    # frontier alone exceeds the ceiling (rejected by the router); within what is
    # left, both cheap members fit.
    assert [s[0].card.id for s in decision.council.members.slots] == ["small", "vision-mid"]
    tight = ask("council", modelyard={"max_cost_usd": str(costs["vision-mid"])})
    degraded = engine.router.plan(tight, random.Random(1))
    assert degraded.council is None
    assert any("members' expected cost" in n for n in degraded.notes)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"members": ["small"]}, "at least two members"),
        ({"members": ["small", "small"]}, "named twice"),
        ({"members": ["small", "ghost"]}, "'ghost' is not declared"),
        ({"members": ["small", "auto"]}, "'auto' is a policy"),
        ({"members": {"count": 1}}, "greater than or equal to 2"),
        ({"adjudicator": "ghost"}, "'ghost' is not 'vote' nor a declared"),
        ({"adjudicator": "council"}, "a council adjudicating a council"),
        ({"accept": {"min_agreement": 1.5}}, "less than or equal to 1"),
        ({"extract": "nonsense"}, "unknown extractor 'nonsense'"),
        ({"members": ["small", "frontier"], "votes": 3}, "Extra inputs are not permitted"),
    ],
)
def test_bad_council_settings_are_refused_at_load(settings: dict[str, Any], message: str) -> None:
    policy = {"type": "council", "members": ["small", "frontier"], **settings}
    with pytest.raises(ConfigError, match=message):
        cascade_config(council=policy)


def test_aliases_in_members_resolve_to_models() -> None:
    decision = plan(council(["cheap", "best-model"]))
    assert [s[0].card.id for s in decision.council.members.slots] == ["small", "frontier"]


def test_route_explains_a_council_without_calling_anyone() -> None:
    engine = engine_for({}, InMemoryLedger(), council())
    decision = engine.route(
        ChatRequest.model_validate(
            {"model": "council", "messages": [{"role": "user", "content": "hi"}]}
        )
    )
    assert decision.explain()["kind"] == "council"
