"""`/v1/messages` driven by the official anthropic SDK, routed to an OpenAI-format and
an Anthropic-format upstream: text, system, multi-turn, tools, images, streaming,
stop reasons, usage, count_tokens, and one ledger record per upstream call."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from anthropic.types import Message, MessageTokensCount

from modelyard.testing.upstream import ANTHROPIC_PATH, OPENAI_PATH
from tests.server.messages.conftest import CLAUDE, GPT, Gateway

# Each model as the caller names it, the model that must answer, and the upstream path.
TARGETS = [("gpt", GPT, OPENAI_PATH), (CLAUDE, CLAUDE, ANTHROPIC_PATH)]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a png").decode()


@pytest.mark.parametrize(("name", "model", "path"), TARGETS)
async def test_text_answer_with_system_usage_and_routing_headers(
    gateway: Gateway, name: str, model: str, path: str
) -> None:
    raw = await gateway.sdk.messages.with_raw_response.create(
        model=name,
        max_tokens=300,
        system=[{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Be kind."}],
        messages=[{"role": "user", "content": "Hi there"}],
        extra_body={"temperature": 0.5},  # this SDK version no longer names it
        metadata={"user_id": "u-42"},
    )
    message = await raw.parse()
    assert isinstance(message, Message)
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: Hi there"
    assert message.stop_reason == "end_turn"
    assert message.model == model
    assert message.id.startswith("msg_")
    assert raw.headers["x-modelyard-model"] == model
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    (record,) = await gateway.ledger.records()
    assert raw.headers["x-modelyard-decision"] == record.decision_id
    assert record.caller == "u-42"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        record.input_tokens,
        record.output_tokens,
    )
    sent = gateway.last_body(path)
    assert sent["max_tokens"] == 300
    assert sent["temperature"] == 0.5
    if path == OPENAI_PATH:
        assert sent["messages"][0] == {"role": "system", "content": "Be terse.\n\nBe kind."}
        assert sent["user"] == "u-42"
    else:
        assert sent["system"] == "Be terse.\n\nBe kind."
        assert sent["metadata"] == {"user_id": "u-42"}


@pytest.mark.parametrize(("name", "model", "path"), TARGETS)
async def test_tool_use_then_tool_result_round_trip(
    gateway: Gateway, name: str, model: str, path: str
) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    first = await gateway.sdk.messages.create(
        model=name,
        max_tokens=200,
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[question],
    )
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    sent = gateway.last_body(path)
    if path == OPENAI_PATH:
        assert sent["tool_choice"] == "required"
        assert sent["parallel_tool_calls"] is False
        assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    else:
        assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    second = await gateway.sdk.messages.create(
        model=name,
        max_tokens=200,
        tools=[WEATHER],
        tool_choice={"type": "auto"},
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    assert second.content[0].text == "tool said: 18C"
    sent = gateway.last_body(path)
    if path == OPENAI_PATH:
        assert sent["messages"][-2]["tool_calls"][0]["id"] == call.id
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.id, "content": "18C"}
    else:
        assert sent["messages"][-1]["content"][0]["tool_use_id"] == call.id
    assert len(await gateway.ledger.records()) == 2


@pytest.mark.parametrize(
    ("choice", "openai_choice"),
    [
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ({"type": "none"}, "none"),
        ({"type": "auto"}, "auto"),
    ],
)
async def test_tool_choice_maps_to_openai(
    gateway: Gateway, choice: Any, openai_choice: Any
) -> None:
    message = await gateway.sdk.messages.create(
        model="gpt",
        max_tokens=100,
        tools=[WEATHER],
        tool_choice=choice,
        messages=[{"role": "user", "content": "Weather?"}],
    )
    assert gateway.last_body(OPENAI_PATH)["tool_choice"] == openai_choice
    expected = "end_turn" if choice["type"] == "none" else "tool_use"
    assert message.stop_reason == expected


@pytest.mark.parametrize(("name", "model", "path"), TARGETS)
async def test_images_base64_and_url_reach_both_upstreams(
    gateway: Gateway, name: str, model: str, path: str
) -> None:
    message = await gateway.sdk.messages.create(
        model=name,
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                    },
                    {"type": "text", "text": "What are these?"},
                ],
            }
        ],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: What are these?"
    content = gateway.last_body(path)["messages"][-1]["content"]
    if path == OPENAI_PATH:
        assert content[0] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}"},
        }
        assert content[1] == {
            "type": "image_url",
            "image_url": {"url": "https://example.com/cat.jpg"},
        }
    else:
        assert content[0]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}
        assert content[1]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}


@pytest.mark.parametrize(("name", "model", "path"), TARGETS)
async def test_multi_turn_merges_consecutive_turns_and_drops_thinking(
    gateway: Gateway, name: str, model: str, path: str
) -> None:
    message = await gateway.sdk.messages.create(
        model=name,
        max_tokens=100,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "One."},
            {"role": "user", "content": "Two."},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Noted."},
                ],
            },
            {"role": "user", "content": "Three."},
        ],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: Three."
    sent = json.dumps(gateway.last_body(path))
    assert "hmm" not in sent
    assert "sig" not in sent
    assert "One." in sent
    assert "Two." in sent
    assert "Noted." in sent


@pytest.mark.parametrize(("name", "model", "path"), TARGETS)
async def test_stream_yields_the_final_message(
    gateway: Gateway, name: str, model: str, path: str
) -> None:
    async with gateway.sdk.messages.stream(
        model=name, max_tokens=100, messages=[{"role": "user", "content": "Stream me"}]
    ) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "echo: Stream me"
    assert len(texts) > 1  # it really streamed in pieces
    assert final.content[0].type == "text"
    assert final.content[0].text == "echo: Stream me"
    assert final.stop_reason == "end_turn"
    assert final.model == model
    (record,) = await gateway.ledger.records()
    assert record.status == "ok"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        record.input_tokens,
        record.output_tokens,
    )
    assert gateway.last_body(path)["stream"] is True


@pytest.mark.parametrize(("name", "model", "path"), TARGETS)
async def test_stream_with_tools_yields_tool_use(
    gateway: Gateway, name: str, model: str, path: str
) -> None:
    async with gateway.sdk.messages.stream(
        model=name,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = await stream.get_final_message()
    (call,) = final.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"


async def test_stream_events_follow_anthropics_sequence(gateway: Gateway) -> None:
    body = {
        "model": "gpt",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "Sequence"}],
    }
    response = await gateway.http.post("/v1/messages", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    (record,) = await gateway.ledger.records()
    assert delta["usage"]["output_tokens"] == record.output_tokens
    assert delta["modelyard"]["cost_usd"] == str(record.cost_usd.normalize())


async def test_stop_sequence_from_an_anthropic_upstream(gateway: Gateway) -> None:
    gateway.upstream.script.push(
        ANTHROPIC_PATH,
        body={
            "id": "msg_x",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": "one, two"}],
            "stop_reason": "stop_sequence",
            "stop_sequence": "three",
            "usage": {"input_tokens": 12, "output_tokens": 4},
        },
    )
    message = await gateway.sdk.messages.create(
        model="claude",
        max_tokens=50,
        stop_sequences=["three"],
        messages=[{"role": "user", "content": "Count"}],
    )
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "three")
    assert gateway.last_body(ANTHROPIC_PATH)["stop_sequences"] == ["three"]


async def test_max_tokens_stop_reason_and_stop_sequences_to_openai(gateway: Gateway) -> None:
    gateway.upstream.script.push(
        OPENAI_PATH,
        body={
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-test",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "cut"},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
        },
    )
    message = await gateway.sdk.messages.create(
        model="gpt",
        max_tokens=5,
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "Long answer please"}],
    )
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 5)
    assert gateway.last_body(OPENAI_PATH)["stop"] == ["END"]


async def test_fallback_writes_one_record_per_upstream_call(gateway: Gateway) -> None:
    gateway.upstream.script.push(
        ANTHROPIC_PATH,
        status=529,
        body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    raw = await gateway.sdk.messages.with_raw_response.create(
        model="claude-first", max_tokens=50, messages=[{"role": "user", "content": "Hello"}]
    )
    assert (await raw.parse()).model == GPT
    assert raw.headers["x-modelyard-failed-attempts"].startswith(CLAUDE)
    records = await gateway.ledger.records()
    assert [(r.model_id, r.status) for r in records] == [(CLAUDE, "error"), (GPT, "ok")]


async def test_routing_hints_from_headers(gateway: Gateway) -> None:
    raw = await gateway.sdk.messages.with_raw_response.create(
        model="auto",
        max_tokens=50,
        messages=[{"role": "user", "content": "Hello"}],
        extra_headers={"x-modelyard-policy": "best"},
    )
    assert raw.headers["x-modelyard-model"] == CLAUDE  # best, not the cheapest


async def test_structured_output_config_becomes_a_json_schema_format(gateway: Gateway) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response = await gateway.http.post(
        "/v1/messages",
        json={
            "model": "gpt",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "A city"}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        },
    )
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["content"][0]["text"]) == {"city": "Paris"}
    sent = gateway.last_body(OPENAI_PATH)["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == schema


@pytest.mark.parametrize(("name", "model", "path"), TARGETS)
async def test_count_tokens_is_sane_and_bills_nothing(
    gateway: Gateway, name: str, model: str, path: str
) -> None:
    short = await gateway.sdk.messages.count_tokens(
        model=name, messages=[{"role": "user", "content": "Hello there"}]
    )
    longer = await gateway.sdk.messages.count_tokens(
        model=name,
        system="You are a helpful assistant who answers in French.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Hello there " * 50}],
    )
    assert isinstance(short, MessageTokensCount)
    assert 2 <= short.input_tokens < 30
    assert longer.input_tokens > short.input_tokens + 100
    assert await gateway.ledger.records() == []
    assert gateway.upstream.requests == []


async def test_count_tokens_for_a_policy_counts_for_its_first_choice(gateway: Gateway) -> None:
    text = [{"role": "user", "content": "Count these words for me " * 20}]
    best = await gateway.sdk.messages.count_tokens(model="best", messages=text)
    claude = await gateway.sdk.messages.count_tokens(model=CLAUDE, messages=text)
    cheapest = await gateway.sdk.messages.count_tokens(model="auto", messages=text)
    gpt = await gateway.sdk.messages.count_tokens(model=GPT, messages=text)
    assert (best.input_tokens, cheapest.input_tokens) == (claude.input_tokens, gpt.input_tokens)
    assert claude.input_tokens > gpt.input_tokens  # Anthropic's tokenizer counts more


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """(event name, data) pairs of an SSE body."""
    events: list[tuple[str, Any]] = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events
