"""A cascade is a plan: the router builds its steps purely, each tier through the
capability filter, data class and ceilings; the config is checked at load."""

from __future__ import annotations

import random
from typing import Any

import pytest

from modelyard.catalog.catalog import build_catalog
from modelyard.engine import build_policies
from modelyard.errors import ConfigError, NoQualifiedModelError
from modelyard.routing.plan import Decision
from modelyard.routing.router import Router
from modelyard.routing.scorers import PriorScorer
from tests.cascade.helpers import AGREE, ask, cascade_config
from tests.stack import ENV

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def router(**policies: Any) -> Router:
    config = cascade_config(**policies)
    catalog = build_catalog(config, ENV)
    return Router(catalog, build_policies(config), config.default_policy, PriorScorer())


def frugal(tiers: list[Any], **extra: Any) -> dict[str, Any]:
    return {"frugal": {"type": "cascade", "tiers": tiers, "verifier": AGREE, **extra}}


def slots(decision: Decision) -> list[list[list[str]]]:
    assert decision.cascade is not None
    return [[[c.card.id for c in slot] for slot in step.slots] for step in decision.cascade.steps]


def test_tiers_become_steps_in_order_with_parallel_slots_and_aliases_resolved() -> None:
    r = router(**frugal(["cheap", ["vision-mid", "local-llm"], "best-model"]))
    decision = r.plan(ask(), random.Random(1))
    assert decision.kind == "cascade"
    assert slots(decision) == [[["small"]], [["vision-mid"], ["local-llm"]], [["frontier"]]]
    assert [c.card.id for c in decision.candidates] == [
        "small",
        "vision-mid",
        "local-llm",
        "frontier",
    ]
    explained = decision.explain()["cascade"]
    assert explained["verifier"]["type"] == "agreement"
    assert explained["steps"][1] == {
        "step": 2,
        "tier": 1,
        "parallel": True,
        "slots": [["vision-mid"], ["local-llm"]],
    }


def test_a_member_with_a_fallback_is_one_slot_ranked_primary_first() -> None:
    r = router(**frugal([{"model": "small", "fallback": ["local-llm"]}, "frontier"]))
    assert slots(r.plan(ask(), random.Random(1))) == [[["small", "local-llm"]], [["frontier"]]]


def test_an_unqualified_tier_is_skipped_with_the_filter_reason() -> None:
    # small and local-llm cannot call tools: their tier goes, the reason stays.
    r = router(**frugal([["small", "local-llm"], "vision-mid", "frontier"]))
    decision = r.plan(ask(tools=[TOOL]), random.Random(1))
    assert slots(decision) == [[["vision-mid"]], [["frontier"]]]
    [note] = decision.notes
    assert note.startswith("tier 0 (small+local-llm) skipped: small: ")
    assert "tools" in note


def test_a_parallel_tier_loses_only_its_unqualified_member() -> None:
    r = router(**frugal([["small", "vision-mid"], "frontier"]))
    decision = r.plan(ask(tools=[TOOL]), random.Random(1))
    assert slots(decision) == [[["vision-mid"]], [["frontier"]]]
    assert "without small" in decision.notes[0]


def test_data_class_and_ceilings_apply_to_every_tier() -> None:
    r = router(**frugal(["small", "local-llm", "frontier"]))
    private = r.plan(ask(modelyard={"data_class": "confidential"}), random.Random(1))
    assert slots(private) == [[["local-llm"]]]
    capped = r.plan(ask(modelyard={"max_cost_usd": "0.0005"}), random.Random(1))
    assert slots(capped) == [[["small"]], [["local-llm"]]]
    assert any("tier 2 (frontier) skipped" in n and "max_cost_usd" in n for n in capped.notes)


def test_max_hops_plans_only_that_many_qualified_tiers() -> None:
    r = router(**frugal(["small", "vision-mid", "frontier"], max_hops=2))
    decision = r.plan(ask(), random.Random(1))
    assert slots(decision) == [[["small"]], [["vision-mid"]]]
    assert decision.notes == ("tier 2 (frontier) not planned: max_hops 2",)


def test_no_qualified_tier_is_the_usual_400() -> None:
    r = router(**frugal(["small", "local-llm"]))
    with pytest.raises(NoQualifiedModelError):
        r.plan(ask(tools=[TOOL]), random.Random(1))


def test_planning_is_pure() -> None:
    r = router(**frugal(["small", ["vision-mid", "local-llm"], "frontier"]))
    a, b = (r.plan(ask(), random.Random(5)).explain() for _ in range(2))
    assert a == b


@pytest.mark.parametrize(
    ("policy", "fragments"),
    [
        (
            {"tiers": ["small", "gpt-9"]},
            ["policies.frugal.tiers.1", "model 'gpt-9'", "not declared"],
        ),
        ({"tiers": ["small", "frugal"]}, ["policies.frugal.tiers.1", "names itself", "cycle"]),
        ({"tiers": ["small", "best"]}, ["policies.frugal.tiers.1", "policy 'best'"]),
        ({"tiers": ["small", "frontier", "small"]}, ["tier 0 and again in tier 2", "cycle"]),
        ({"tiers": ["small", ["cheap", "frontier"]]}, ["policies.frugal.tiers.1", "'small'"]),
        ({"tiers": [{"model": "small", "fallback": ["small"]}]}, ["again in tier 0"]),
        ({"tiers": ["small"], "max_hops": 0}, ["policies.frugal.max_hops"]),
        ({"tiers": []}, ["policies.frugal.tiers"]),
        (
            {"tiers": ["small"], "verifier": {"type": "oracle"}},
            ["policies.frugal.verifier", "unknown verifier 'oracle'", "agreement"],
        ),
        (
            {"tiers": ["small"], "verifier": {"type": "agreement", "min_agree": 1}},
            ["verifier.min_agree"],
        ),
        (
            {"tiers": ["small"], "verifier": {"type": "agreement", "extract": "vibes"}},
            ["unknown extractor 'vibes'"],
        ),
        (
            {"tiers": ["small"], "verifier": {"type": "judge", "model": "frugal"}},
            ["policies.frugal.verifier.model", "cycle"],
        ),
        (
            {"tiers": ["small"], "verifier": {"type": "judge", "model": "nobody"}},
            ["policies.frugal.verifier.model", "'nobody'"],
        ),
        (
            {"tiers": ["small"], "verifier": {"type": "learned", "artifact": "/nonexistent/v"}},
            ["policies.frugal.verifier.artifact", "no learned verifier"],
        ),
    ],
)
def test_bad_cascade_config_is_a_load_error_naming_the_path(
    policy: dict[str, Any], fragments: list[str]
) -> None:
    settings = {"type": "cascade", "verifier": AGREE, **policy}
    with pytest.raises(ConfigError) as info:
        cascade_config(frugal=settings)
    message = str(info.value)
    assert message.startswith("test-stack.yaml: ")
    for fragment in fragments:
        assert fragment in message
