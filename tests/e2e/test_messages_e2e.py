"""`/v1/messages` over real sockets, driven by the official anthropic SDK: the real
uvicorn gateway, the real wire adapters, the real SQLite ledger, the fake upstream
speaking both providers' formats; streamed and not, text and tools, to an
OpenAI-compatible and an Anthropic upstream, with costs from the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from modelyard.testing.upstream import ANTHROPIC_PATH, OPENAI_PATH
from tests.e2e.conftest import CLAUDE, E2E, GPT
from tests.e2e.test_real_server import ledger_records

pytestmark = pytest.mark.slow

TARGETS = [(GPT, OPENAI_PATH), ("claude", ANTHROPIC_PATH)]
MODEL = {GPT: GPT, "claude": CLAUDE}
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def sdk(e2e: E2E) -> Iterator[anthropic.Anthropic]:
    """The official SDK pointed at the gateway; no retries, so counts are exact."""
    with anthropic.Anthropic(
        base_url=e2e.gateway_url, api_key="anything", max_retries=0, timeout=20
    ) as client:
        yield client


def records_of(e2e: E2E, decision_id: str) -> list[Any]:
    return [r for r in asyncio.run(ledger_records(e2e)) if r.decision_id == decision_id]


@pytest.mark.parametrize(("name", "path"), TARGETS)
def test_text_answer_is_billed_once_with_its_cost(
    sdk: anthropic.Anthropic, e2e: E2E, name: str, path: str
) -> None:
    raw = sdk.messages.with_raw_response.create(
        model=name,
        max_tokens=100,
        system="Be terse.",
        messages=[{"role": "user", "content": "hello over sockets"}],
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello over sockets"
    assert message.model == MODEL[name]
    assert raw.headers["x-modelyard-model"] == MODEL[name]
    assert e2e.upstream.requests_to(path)[-1].body["max_tokens"] == 100
    (record,) = records_of(e2e, raw.headers["x-modelyard-decision"])
    assert record.status == "ok"
    assert record.output_tokens == message.usage.output_tokens
    assert Decimal(raw.headers["x-modelyard-cost-usd"]) == record.cost_usd > 0


@pytest.mark.parametrize(("name", "path"), TARGETS)
def test_streamed_tool_use_over_sockets(
    sdk: anthropic.Anthropic, e2e: E2E, name: str, path: str
) -> None:
    with sdk.messages.stream(
        model=name,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
        decision = stream.response.headers["x-modelyard-decision"]
    (call,) = final.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"
    assert e2e.upstream.requests_to(path)[-1].body["stream"] is True
    (record,) = records_of(e2e, decision)
    assert record.streamed
    assert record.output_tokens == final.usage.output_tokens


@pytest.mark.parametrize(("name", "path"), TARGETS)
def test_streamed_text_and_count_tokens(
    sdk: anthropic.Anthropic, e2e: E2E, name: str, path: str
) -> None:
    messages: Any = [{"role": "user", "content": "Tell me about the sea"}]
    with sdk.messages.stream(model=name, max_tokens=100, messages=messages) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: Tell me about the sea"
    assert final.stop_reason == "end_turn"
    count = sdk.messages.count_tokens(model=name, messages=messages)
    assert 3 <= count.input_tokens <= 40


def test_bad_input_over_sockets_is_an_anthropic_error(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(
            model=GPT,
            max_tokens=10,
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}],
                },
            ],
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "toolu_x" in caught.value.body["error"]["message"]
    assert caught.value.request_id
