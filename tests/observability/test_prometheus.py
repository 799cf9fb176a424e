"""`/metrics` over the real app: every counter agrees with the ledger records the
same requests wrote, and the state gauges follow breakers and 429 cool-downs."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from prometheus_client import REGISTRY, Counter

from modelyard.engine import Engine
from modelyard.errors import ProviderRateLimitError, ProviderServerError
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.routing.policies import BestQualityPolicy
from modelyard.types import ChatRequest, Completion
from tests.observability.scrape import delta, scrape, value

HELLO = [{"role": "user", "content": "hello"}]


async def chat(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("messages", HELLO)
    return await client.post("/v1/chat/completions", json=body)


def failing(exc: Exception) -> FunctionProvider:
    async def complete(request: ChatRequest, upstream: str) -> Completion:
        raise exc

    return FunctionProvider(complete)


async def test_counters_match_the_ledger_records(
    client: httpx.AsyncClient, ledger: InMemoryLedger
) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await chat(client, model="cheap")).status_code == 200
    assert (await chat(client, model="best")).status_code == 200
    after = await scrape(client)
    records = await ledger.records()
    assert len(records) == 4
    no_key = {"key": "none", "team": "none"}
    assert delta(before, after, "modelyard_key_cost_usd_total", **no_key) == pytest.approx(
        float(sum(r.cost_usd for r in records)), rel=1e-9
    )
    assert delta(before, after, "modelyard_key_tokens_total", **no_key, type="output") == sum(
        r.output_tokens for r in records
    )
    assert delta(before, after, "modelyard_requests_total", policy="cheap", model="small") == 3
    assert (
        delta(
            before, after, "modelyard_requests_total", policy="best", model="frontier", status="200"
        )
        == 1
    )
    for model in ("small", "frontier"):
        mine = [r for r in records if r.model_id == model]
        dep = mine[0].deployment
        assert delta(
            before, after, "modelyard_attempts_total", model=model, deployment=dep, status="ok"
        ) == len(mine)
        assert delta(before, after, "modelyard_tokens_total", model=model, type="input") == sum(
            r.input_tokens for r in mine
        )
        assert delta(before, after, "modelyard_tokens_total", model=model, type="output") == sum(
            r.output_tokens for r in mine
        )
        cost = delta(before, after, "modelyard_cost_usd_total", model=model, deployment=dep)
        assert cost == pytest.approx(float(sum(r.cost_usd for r in mine)), rel=1e-9)
        assert delta(before, after, "modelyard_attempt_latency_seconds_count", model=model) == len(
            mine
        )


async def test_stream_counts_time_to_first_token_and_its_request_at_the_end(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    response = await chat(client, model="cheap", stream=True)
    assert response.status_code == 200
    after = await scrape(client)
    assert delta(before, after, "modelyard_time_to_first_token_seconds_count", model="small") == 1
    assert (
        delta(
            before, after, "modelyard_requests_total", policy="cheap", model="small", status="200"
        )
        == 1
    )


async def test_fallback_counts_the_failed_model_and_the_served_request(
    client: httpx.AsyncClient, providers: dict[str, FunctionProvider]
) -> None:
    providers["bigco"] = failing(ProviderServerError("bigco: 500", provider="bigco"))
    before = await scrape(client)
    response = await chat(client, model="best")
    assert response.status_code == 200
    assert response.headers["x-modelyard-model"] == "vision-mid"
    after = await scrape(client)
    assert (
        delta(
            before,
            after,
            "modelyard_fallbacks_total",
            model="frontier",
            reason="ProviderServerError",
        )
        == 1
    )
    assert delta(before, after, "modelyard_attempts_total", model="frontier", status="error") == 1
    assert delta(before, after, "modelyard_attempts_total", model="vision-mid", status="ok") == 1
    assert (
        delta(
            before,
            after,
            "modelyard_requests_total",
            policy="best",
            model="vision-mid",
            status="200",
        )
        == 1
    )


async def test_refused_and_failed_requests_are_counted_with_their_status(
    client: httpx.AsyncClient, providers: dict[str, FunctionProvider]
) -> None:
    providers["cheapco"] = failing(ProviderServerError("cheapco: 500", provider="cheapco"))
    before = await scrape(client)
    assert (await chat(client, model="no-such-model")).status_code == 404
    assert (await chat(client, model="cheap")).status_code == 502
    after = await scrape(client)
    assert (
        delta(before, after, "modelyard_requests_total", policy="none", model="none", status="404")
        == 1
    )
    assert (
        delta(before, after, "modelyard_requests_total", policy="cheap", model="none", status="502")
        == 1
    )


async def test_breaker_and_cool_down_gauges_follow_the_health_state(
    engine: Engine, client: httpx.AsyncClient, providers: dict[str, FunctionProvider]
) -> None:
    providers["cheapco"] = failing(ProviderServerError("cheapco: 500", provider="cheapco"))
    providers["bigco"] = failing(
        ProviderRateLimitError("bigco: 429", provider="bigco", retry_after=30)
    )
    samples = await scrape(client)
    assert value(samples, "modelyard_breaker_state", deployment="cheapco") == 0
    for _ in range(5):  # the default failure threshold
        await chat(client, model="cheap")
    await chat(client, model="frontier")
    samples = await scrape(client)
    assert value(samples, "modelyard_breaker_state", deployment="cheapco") == 2
    assert value(samples, "modelyard_breaker_consecutive_failures", deployment="cheapco") == 5
    assert (
        0
        < value(samples, "modelyard_cooldown_seconds", deployment="cheapco", reason="breaker")
        <= 30
    )
    assert value(samples, "modelyard_breaker_state", deployment="bigco") == 0
    assert (
        20
        < value(samples, "modelyard_cooldown_seconds", deployment="bigco", reason="rate_limit")
        <= 30
    )
    assert value(samples, "modelyard_breaker_state", deployment="onprem") == 0


async def test_hedge_is_counted_by_the_runner_up(
    engine: Engine, client: httpx.AsyncClient, providers: dict[str, FunctionProvider]
) -> None:
    async def slow(request: ChatRequest, upstream: str) -> Completion:
        await anyio.sleep(5)
        raise AssertionError("cancelled before")

    providers["bigco"] = FunctionProvider(slow)
    engine.router.policies["best"] = BestQualityPolicy(
        BestQualityPolicy.Settings(hedge_after_ms=20)
    )
    before = await scrape(client)
    with anyio.fail_after(3):
        response = await chat(client, model="best")
    assert response.headers["x-modelyard-model"] == "vision-mid"
    after = await scrape(client)
    assert delta(before, after, "modelyard_hedges_total", model="vision-mid") == 1
    assert (
        delta(before, after, "modelyard_attempts_total", model="frontier", status="cancelled") == 1
    )


async def test_labels_carry_no_request_or_decision_ids_nor_prompt_text(
    client: httpx.AsyncClient, ledger: InMemoryLedger
) -> None:
    secret_prompt = "please-keep-this-prompt-private"
    response = await chat(
        client, model="cheap", messages=[{"role": "user", "content": secret_prompt}]
    )
    assert response.status_code == 200
    text = (await client.get("/metrics")).text
    (record,) = await ledger.records()
    for private in (secret_prompt, record.request_id, record.decision_id, record.id):
        assert private not in text


async def test_other_modules_metrics_on_the_default_registry_are_exported(
    client: httpx.AsyncClient,
) -> None:
    # As the load shedder (issue 14) registers `modelyard_requests_shed_total`.
    name = "modelyard_test_registry_probe"
    probe = Counter(name, "a counter another module registers", ["reason"])
    try:
        probe.labels("queue_full").inc(2)
        samples = await scrape(client)
        assert value(samples, f"{name}_total", reason="queue_full") == 2
    finally:
        REGISTRY.unregister(probe)
