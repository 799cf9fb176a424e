"""The router: requirements, the capability filter with reasons, policies, purity."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from modelyard.catalog.catalog import build_catalog
from modelyard.engine import build_policies
from modelyard.errors import (
    ContextLengthError,
    ModelNotFoundError,
    NoQualifiedModelError,
    ServiceUnavailableError,
)
from modelyard.routing.plan import Decision
from modelyard.routing.requirements import hints_from_headers, infer_requirements
from modelyard.routing.router import Router
from modelyard.routing.scorers import PriorScorer
from modelyard.types import Capability, ChatRequest, DataClass, RoutingHints
from tests.stack import ENV, stack_config


def make_router(env: dict[str, str] | None = None, **overrides: Any) -> Router:
    config = stack_config(**overrides)
    catalog = build_catalog(config, ENV if env is None else env)
    return Router(catalog, build_policies(config), config.default_policy, PriorScorer())


def req(**body: Any) -> ChatRequest:
    body.setdefault("messages", [{"role": "user", "content": "Classify: 'my card was declined'"}])
    return ChatRequest.model_validate(body)


def plan(body: dict[str, Any], router: Router | None = None, seed: int = 1) -> Decision:
    return (router or make_router()).plan(req(**body), random.Random(seed))


def order(decision: Decision) -> list[str]:
    return [c.card.id for c in decision.candidates]


IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def test_requirements_inferred_from_the_body() -> None:
    request = req(
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is it"}, IMAGE]}],
        tools=[TOOL],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        stream=True,
        max_tokens=300,
        modelyard={"data_class": "confidential", "max_cost_usd": "0.01", "task": "vision"},
    )
    needs = infer_requirements(request)
    assert needs.capabilities == {
        Capability.TEXT,
        Capability.VISION,
        Capability.TOOLS,
        Capability.JSON_SCHEMA,
        Capability.STREAMING,
    }
    assert needs.max_output_tokens == 300
    assert needs.data_class is DataClass.CONFIDENTIAL
    assert needs.max_cost_usd == Decimal("0.01")
    assert needs.task == "vision"
    assert needs.prompt_tokens > 765  # the image alone


def test_header_hints_merge_and_body_wins() -> None:
    hints = hints_from_headers(
        {
            "X-Modelyard-Task": "code",
            "x-modelyard-max-cost-usd": "0.5",
            "x-modelyard-capabilities": "vision, tools",
            "x-modelyard-data-class": "public",
        },
        RoutingHints(data_class=DataClass.CONFIDENTIAL),
    )
    assert hints.task == "code"
    assert hints.max_cost_usd == Decimal("0.5")
    assert hints.capabilities == [Capability.VISION, Capability.TOOLS]
    assert hints.data_class is DataClass.CONFIDENTIAL


def test_filter_gives_a_reason_for_every_rejected_model() -> None:
    decision = plan({"messages": [{"role": "user", "content": [IMAGE]}], "tools": [TOOL]})
    assert order(decision) == ["vision-mid", "frontier"]
    reasons = {r.model_id: r.reason for r in decision.rejected}
    assert reasons["small"] == "lacks tools, vision"
    assert reasons["local-llm"] == "lacks tools, vision"


def test_confidential_data_only_reaches_private_deployments() -> None:
    decision = plan({"modelyard": {"data_class": "confidential"}})
    assert order(decision) == ["local-llm"]
    reasons = {r.model_id: r.reason for r in decision.rejected}
    assert reasons["frontier"] == "data class 'confidential' not allowed on a public deployment"


def test_context_window_and_output_cap_are_enforced() -> None:
    long_text = "word " * 9000  # ~9k tokens: over local-llm's 8k window
    decision = plan({"messages": [{"role": "user", "content": long_text}]})
    reasons = {r.model_id: r.reason for r in decision.rejected}
    assert "context window 8000" in reasons["local-llm"]
    capped = plan({"max_tokens": 10_000})
    assert (
        "max_tokens 10000 exceeds its max output 4000"
        in {r.model_id: r.reason for r in capped.rejected}["small"]
    )


def test_oversized_prompt_is_a_context_length_error() -> None:
    with pytest.raises(ContextLengthError, match="fits no model's context window"):
        plan({"messages": [{"role": "user", "content": "word " * 250_000}]})


def test_cheapest_best_and_utility_orders() -> None:
    assert order(plan({"model": "cheapest"})) == ["local-llm", "small", "vision-mid", "frontier"]
    assert order(plan({"model": "best"})) == ["frontier", "vision-mid", "small", "local-llm"]
    utility = plan({"model": "auto"})
    assert utility.policy == "auto"
    assert utility.kind == "fallback"
    assert utility.candidates[0].reason.startswith("utility ")
    assert set(order(utility)) == {"local-llm", "small", "vision-mid", "frontier"}


def test_utility_trades_quality_for_cost_with_lambda() -> None:
    stingy = make_router(
        policies={"auto": {"type": "utility", "lambda_cost": 10_000, "mu_latency": 0}}
    )
    lavish = make_router(policies={"auto": {"type": "utility", "lambda_cost": 0, "mu_latency": 0}})
    assert order(plan({}, stingy))[0] == "local-llm"
    assert order(plan({}, lavish))[0] == "frontier"


def test_task_quality_priors_change_the_choice() -> None:
    router = make_router(policies={"auto": {"type": "best"}})
    assert order(plan({"modelyard": {"task": "classification"}}, router))[0] == "frontier"
    floor = make_router(policies={"auto": {"type": "cheapest", "min_quality": 0.85}})
    decision = plan({"modelyard": {"task": "classification"}}, floor)
    assert order(decision) == ["small", "frontier"]  # small is 0.9 on classification
    assert any("floor 0.85" in r.reason for r in decision.rejected)


@pytest.mark.parametrize("below_floor", ["best", "refuse"])
def test_a_floor_nobody_reaches_serves_the_best_predicted_or_refuses(below_floor: str) -> None:
    policy = {"type": "cheapest", "min_quality": 0.99, "below_floor": below_floor}
    router = make_router(policies={"auto": policy})
    if below_floor == "refuse":
        with pytest.raises(NoQualifiedModelError, match=r"floor 0\.99"):
            plan({}, router)
        return
    decision = plan({}, router)
    assert order(decision)[0] == "frontier"  # the highest prior quality
    assert decision.candidates[0].reason.startswith("no model predicted >= floor 0.99")


def test_cost_and_latency_ceilings_drop_candidates_with_reasons() -> None:
    decision = plan({"model": "best", "modelyard": {"max_cost_usd": "0.001"}})
    assert "frontier" not in order(decision)
    reasons = {r.model_id: r.reason for r in decision.rejected}
    assert reasons["frontier"].startswith("expected cost $")
    assert "exceeds max_cost_usd 0.001" in reasons["frontier"]
    fast = plan({"model": "best", "modelyard": {"max_latency_ms": 9000}})
    assert order(fast) == ["vision-mid", "small"]
    assert (
        "exceeds max_latency_ms 9000" in {r.model_id: r.reason for r in fast.rejected}["frontier"]
    )


def test_fixed_model_alias_and_policy_alias() -> None:
    by_alias = plan({"model": "cheap"})
    assert order(by_alias) == ["small"]
    assert by_alias.kind == "single"
    assert order(plan({"model": "pinned"})) == ["small"]
    assert order(plan({"model": "frontier"})) == ["frontier"]


def test_fixed_model_that_lacks_a_capability_is_a_400_naming_it() -> None:
    with pytest.raises(NoQualifiedModelError, match="small: lacks vision") as info:
        plan({"model": "small", "messages": [{"role": "user", "content": [IMAGE]}]})
    assert info.value.status_code == 400
    assert info.value.reasons == {"small": "lacks vision"}


def test_capability_nobody_has_is_named() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(NoQualifiedModelError, match="no model in the catalog supports audio"):
        plan({"messages": [{"role": "user", "content": [audio]}]})


def test_unknown_model_is_404_listing_choices() -> None:
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'gpt-9'.*cheap.*small"):
        plan({"model": "gpt-9"})


def test_missing_keys_make_a_503_that_names_them() -> None:
    router = make_router(env={})
    with pytest.raises(ServiceUnavailableError, match="set BIG_KEY") as info:
        plan({"model": "frontier"}, router)
    assert info.value.status_code == 503
    with pytest.raises(ServiceUnavailableError, match="BIG_KEY or CHEAP_KEY"):
        plan({"tools": [TOOL]}, router)


def test_plan_is_pure_same_inputs_same_decision() -> None:
    router = make_router()
    first = plan({"tools": [TOOL]}, router, seed=42)
    second = plan({"tools": [TOOL]}, router, seed=42)
    assert first == second
    assert first.explain() == second.explain()
    assert plan({}, router, seed=43).id != first.id


def test_explain_is_json_ready_and_complete() -> None:
    import json

    explained = plan({"model": "auto"}).explain()
    json.dumps(explained)
    assert explained["policy"] == "auto"
    assert explained["scorer"] == "priors-v1"
    assert [c["rank"] for c in explained["candidates"]] == [1, 2, 3, 4]
    assert explained["requirements"]["capabilities"] == ["text"]


def test_unhealthy_deployments_are_skipped_with_their_reason() -> None:
    router = make_router()
    decision = router.plan(
        req(model="best"), random.Random(1), unhealthy={"bigco": "circuit open after 5 failures"}
    )
    assert "frontier" not in order(decision)
    reasons = {r.model_id: r.reason for r in decision.rejected}
    assert reasons["frontier"] == "deployment 'bigco' skipped: circuit open after 5 failures"


def test_every_qualified_model_unhealthy_is_503_with_reasons() -> None:
    router = make_router()
    with pytest.raises(
        ServiceUnavailableError, match=r"unavailable right now.*cooling down"
    ) as info:
        router.plan(
            req(model="best", tools=[TOOL]),
            random.Random(1),
            unhealthy={"bigco": "circuit open", "cheapco": "cooling down after 429 for 2.0s"},
        )
    assert info.value.status_code == 503
