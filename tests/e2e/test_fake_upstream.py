"""The fake upstream itself: its bodies validate against the SDKs' own types, the
official SDKs can talk to it, and it checks requests the way the real APIs do.
In process (httpx's ASGI transport), so these are quick."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from modelyard.testing.upstream import (
    ANTHROPIC_PATH,
    OPENAI_PATH,
    FakeUpstream,
    create_fake_upstream,
)
from modelyard.testing.wire import example_from_schema, request_problem

OPENAI_KEY = "sk-fake-test-openai-key-000"
ANTHROPIC_KEY = "sk-ant-fake-test-key-000"
TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ANTHROPIC_TOOL: Any = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
USER: Any = [{"role": "user", "content": "hi there"}]
_EVENTS = TypeAdapter(RawMessageStreamEvent)


@pytest.fixture
def state() -> FakeUpstream:
    return FakeUpstream(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)


@pytest.fixture
async def http(state: FakeUpstream) -> AsyncIterator[httpx2.AsyncClient]:
    # The SDKs are built on httpx2 and insist on its client objects.
    transport = httpx2.ASGITransport(app=create_fake_upstream(state))
    async with httpx2.AsyncClient(transport=transport, base_url="http://fake") as client:
        yield client


@pytest.fixture
def oai(http: httpx2.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://fake/v1", api_key=OPENAI_KEY, http_client=http, max_retries=0
    )


@pytest.fixture
def claude(http: httpx2.AsyncClient) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url="http://fake", api_key=ANTHROPIC_KEY, http_client=http, max_retries=0
    )


def sse(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of an SSE body."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event"), fields["data"]))
    return events


def anthropic_headers(key: str = ANTHROPIC_KEY) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": "2023-06-01"}


# --- OpenAI ---------------------------------------------------------------------------


async def test_openai_completion_validates_and_reports_recorded_usage(
    http: httpx2.AsyncClient, state: FakeUpstream
) -> None:
    body = {"model": "gpt-x", "messages": USER}
    response = await http.post(
        OPENAI_PATH, json=body, headers={"authorization": f"Bearer {OPENAI_KEY}"}
    )
    completion = ChatCompletion.model_validate(response.json())
    assert completion.choices[0].message.content == "echo: hi there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-x"
    assert completion.usage is not None
    assert state.requests[-1].usage == completion.usage.model_dump(exclude_none=True)
    assert state.requests[-1].headers["authorization"] == "[redacted]"
    assert state.requests[-1].body == body


async def test_openai_stream_chunks_validate_and_end_with_usage_then_done(
    http: httpx2.AsyncClient,
) -> None:
    body = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await http.post(
        OPENAI_PATH, json=body, headers={"authorization": f"Bearer {OPENAI_KEY}"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [d for _, d in sse(response.text)]
    assert data[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(d)) for d in data[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "echo: hi there"
    )
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])


async def test_openai_sdk_reads_tool_calls_json_and_streams(oai: openai.AsyncOpenAI) -> None:
    tool = await oai.chat.completions.create(model="m", messages=USER, tools=[TOOL])
    call = (tool.choices[0].message.tool_calls or [])[0]
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert tool.choices[0].finish_reason == "tool_calls"
    as_json = await oai.chat.completions.create(
        model="m", messages=USER, response_format={"type": "json_object"}
    )
    assert json.loads(as_json.choices[0].message.content or "") == {"echo": "hi there"}
    stream = await oai.chat.completions.create(model="m", messages=USER, tools=[TOOL], stream=True)
    arguments = ""
    async for chunk in stream:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += (delta.function and delta.function.arguments) or ""
    assert json.loads(arguments) == {"city": "Paris"}


async def test_openai_rejects_a_wrong_key_and_an_invalid_body(
    http: httpx2.AsyncClient, oai: openai.AsyncOpenAI
) -> None:
    bad_key = await http.post(
        OPENAI_PATH, json={"model": "m", "messages": USER}, headers={"authorization": "Bearer no"}
    )
    assert bad_key.status_code == 401
    assert bad_key.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.BadRequestError, match=r"messages\[0\]\..*role"):
        await oai.chat.completions.create(model="m", messages=[{"role": "robot", "content": "x"}])  # type: ignore[list-item, misc]
    with pytest.raises(openai.BadRequestError, match="bogus: unknown field"):
        await oai.chat.completions.create(model="m", messages=USER, extra_body={"bogus": 1})


# --- Anthropic ------------------------------------------------------------------------


async def test_anthropic_message_validates_and_reports_recorded_usage(
    http: httpx2.AsyncClient, state: FakeUpstream
) -> None:
    state.cached_tokens = 2
    body = {"model": "claude-x", "max_tokens": 100, "system": "be brief", "messages": USER}
    response = await http.post(ANTHROPIC_PATH, json=body, headers=anthropic_headers())
    message = Message.model_validate(response.json())
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hi there"  # type: ignore[union-attr]
    assert (message.stop_reason, message.model) == ("end_turn", "claude-x")
    assert message.usage.cache_read_input_tokens == 2
    assert state.requests[-1].usage == message.usage.model_dump(exclude_none=True)
    assert state.requests[-1].headers["x-api-key"] == "[redacted]"


async def test_anthropic_stream_is_the_documented_event_sequence(http: httpx2.AsyncClient) -> None:
    body = {
        "model": "c",
        "max_tokens": 100,
        "messages": USER,
        "stream": True,
        "tools": [ANTHROPIC_TOOL],
    }
    response = await http.post(ANTHROPIC_PATH, json=body, headers=anthropic_headers())
    events = sse(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    partial = ""
    for name, data in events:
        payload = json.loads(data)
        assert payload["type"] == name
        if name != "ping":
            event = _EVENTS.validate_python(payload)
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial += event.delta.partial_json
    assert json.loads(partial) == {"city": "Paris"}
    assert json.loads(events[-2][1])["delta"]["stop_reason"] == "tool_use"


async def test_anthropic_sdk_accumulates_text_and_tool_streams(
    claude: anthropic.AsyncAnthropic,
) -> None:
    async with claude.messages.stream(model="c", max_tokens=50, messages=USER) as stream:
        text = await stream.get_final_text()
        final = await stream.get_final_message()
    assert text == "echo: hi there"
    assert final.usage.output_tokens > 1
    forced: Any = {"type": "tool", "name": "get_weather"}
    async with claude.messages.stream(
        model="c", max_tokens=50, messages=USER, tools=[ANTHROPIC_TOOL], tool_choice=forced
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "Paris"})


async def test_anthropic_checks_headers_and_body(
    http: httpx2.AsyncClient, claude: anthropic.AsyncAnthropic
) -> None:
    body = {"model": "c", "max_tokens": 10, "messages": USER}
    wrong_key = await http.post(ANTHROPIC_PATH, json=body, headers=anthropic_headers("nope"))
    assert wrong_key.status_code == 401
    assert wrong_key.json()["error"]["type"] == "authentication_error"
    no_version = await http.post(ANTHROPIC_PATH, json=body, headers={"x-api-key": ANTHROPIC_KEY})
    assert no_version.status_code == 400
    assert "anthropic-version" in no_version.json()["error"]["message"]
    no_limit = await http.post(
        ANTHROPIC_PATH, json={"model": "c", "messages": USER}, headers=anthropic_headers()
    )
    assert no_limit.status_code == 400
    assert no_limit.json()["error"]["message"] == "max_tokens: Field required"
    with pytest.raises(anthropic.BadRequestError, match="bogus: unknown field"):
        await claude.messages.create(
            model="c", max_tokens=5, messages=USER, extra_body={"bogus": 1}
        )


# --- Scripts and helpers --------------------------------------------------------------


async def test_scripted_responses_come_first_in_order_then_the_default(
    oai: openai.AsyncOpenAI, state: FakeUpstream
) -> None:
    error = {"error": {"message": "slow down", "type": "rate_limit_error", "code": None}}
    state.script.push(OPENAI_PATH, status=429, headers={"retry-after": "1"}, body=error)
    state.script.push(OPENAI_PATH, status=500, body="upstream broke")
    with pytest.raises(openai.RateLimitError) as limited:
        await oai.chat.completions.create(model="m", messages=USER)
    assert limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        await oai.chat.completions.create(model="m", messages=USER)
    ok = await oai.chat.completions.create(model="m", messages=USER)
    assert ok.choices[0].message.content == "echo: hi there"
    assert [r.scripted for r in state.requests] == [True, True, False]
    assert state.script.pending() == 0


async def test_scripted_chunks_can_cut_a_stream_short(
    http: httpx2.AsyncClient, state: FakeUpstream
) -> None:
    state.script.push(ANTHROPIC_PATH, chunks=["event: message_start\n", "data: {"])
    response = await http.post(ANTHROPIC_PATH, json={}, headers=anthropic_headers())
    assert response.text == "event: message_start\ndata: {"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert state.requests_to(ANTHROPIC_PATH)[0].scripted


def test_request_problem_accepts_valid_bodies_and_names_what_is_wrong() -> None:
    assert request_problem("openai", {"model": "m", "messages": USER, "tools": [TOOL]}) is None
    assert request_problem("anthropic", {"model": "c", "max_tokens": 5, "messages": USER}) is None
    assert request_problem("anthropic", {"model": "c", "messages": USER}) == (
        "max_tokens: Field required"
    )
    nested = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x", "x": 1}]}
    assert request_problem("anthropic", nested) == "messages[0].x: unknown field"
    assert request_problem("openai", []) == "the request body must be a JSON object"


def test_example_from_schema_fills_every_property() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
        },
    }
    assert example_from_schema(schema) == {
        "city": "Paris",
        "unit": "celsius",
        "days": 1,
        "tags": ["Paris"],
        "where": {"lat": 1.5},
    }
