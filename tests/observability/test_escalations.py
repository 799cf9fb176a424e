"""Escalations (a specialist below its threshold, a cascade hop its verifier
rejected) and streams that break after their first chunk, as `/metrics` counts them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from modelyard.errors import ProviderServerError
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from modelyard.types import ChatRequest, Chunk, Completion
from tests.cascade.helpers import AGREE, engine_for
from tests.observability.scrape import delta, scrape
from tests.test_hedging_escalation_capture import unsure

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


async def test_specialist_escalation_is_counted_not_as_a_fallback(
    client: httpx.AsyncClient, providers: dict[str, FunctionProvider]
) -> None:
    providers["bigco"] = unsure(0.41)
    before = await scrape(client)
    body = {"model": "best", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.headers["x-modelyard-model"] == "vision-mid"
    after = await scrape(client)
    assert (
        delta(before, after, "modelyard_escalations_total", model="frontier", kind="specialist")
        == 1
    )
    assert (
        delta(before, after, "modelyard_attempts_total", model="frontier", status="escalated") == 1
    )
    assert delta(before, after, "modelyard_fallbacks_total", model="frontier") == 0


async def test_rejected_cascade_hop_is_an_escalation(ledger: InMemoryLedger) -> None:
    script = {"small": "Answer: B", "vision-mid": "Answer: C", "local-llm": "(C)", "frontier": "D"}
    policies = {
        "frugal": {
            "type": "cascade",
            "tiers": ["small", ["vision-mid", "local-llm"], "frontier"],
            "verifier": AGREE,
        }
    }
    app = create_app(engine_for(script, ledger, policies))
    body = {"model": "frugal", "messages": [{"role": "user", "content": "Which letter?"}]}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as c:
        before = await scrape(c)
        response = await c.post("/v1/chat/completions", json=body)
        assert response.headers["x-modelyard-hops"].startswith("1:small=rejected")
        after = await scrape(c)
    assert delta(before, after, "modelyard_escalations_total", model="small", kind="cascade") == 1
    assert delta(before, after, "modelyard_attempts_total") == len(await ledger.records())


async def test_a_stream_broken_after_content_counts_its_error_status(
    client: httpx.AsyncClient, providers: dict[str, FunctionProvider]
) -> None:
    async def stream(request: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        yield Chunk(content="half an ans")
        raise ProviderServerError("cheapco: connection reset", provider="cheapco")

    async def never(request: ChatRequest, upstream: str) -> Completion:
        raise AssertionError("streamed")

    providers["cheapco"] = FunctionProvider(never, stream)
    before = await scrape(client)
    body = {"model": "cheap", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200  # sent before the break
    assert "stream interrupted" in response.text
    after = await scrape(client)
    assert (
        delta(
            before, after, "modelyard_requests_total", policy="cheap", model="small", status="502"
        )
        == 1
    )
    assert delta(before, after, "modelyard_requests_total", status="200") == 0
    assert delta(before, after, "modelyard_attempts_total", model="small", status="error") == 1
