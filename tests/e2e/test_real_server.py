"""The whole gateway over real sockets, driven by the official openai SDK.

Real uvicorn servers, the real wire adapters on the shared httpx client, the real
SQLite ledger; the only double is the upstream, which speaks both providers' wire
formats and records what it received (see `modelyard.testing.upstream`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import openai
import pytest
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from pydantic import TypeAdapter

from modelyard.ledger import CallRecord, open_ledger
from modelyard.testing.upstream import ANTHROPIC_PATH, OPENAI_PATH, RecordedRequest
from modelyard.testing.wire import materialize
from tests.e2e.conftest import ANTHROPIC_KEY, CLAUDE, E2E, GPT, OPENAI_KEY, PRICES

pytestmark = pytest.mark.slow

SYSTEM = "You are terse."
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CITY_SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "city_facts",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
            "required": ["city", "population"],
        },
    },
}
# Each model as the caller names it, and the deployment path that must serve it.
TARGETS = [(GPT, OPENAI_PATH), (CLAUDE, ANTHROPIC_PATH), ("claude", ANTHROPIC_PATH)]
_MESSAGES_NON_STREAMING = TypeAdapter(MessageCreateParamsNonStreaming)
_MESSAGES_STREAMING = TypeAdapter(MessageCreateParamsStreaming)


@pytest.fixture(scope="module")
def client(e2e: E2E) -> Iterator[openai.OpenAI]:
    """The official SDK pointed at the gateway; no SDK retries, so counts are exact."""
    with openai.OpenAI(
        base_url=f"{e2e.gateway_url}/v1", api_key="anything", max_retries=0, timeout=20
    ) as sdk:
        yield sdk


def chat(text: str) -> list[Any]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def last_request(e2e: E2E, path: str) -> RecordedRequest:
    return e2e.upstream.requests_to(path)[-1]


def model_id(name: str) -> str:
    return CLAUDE if name == "claude" else name


def expected_cost(model: str, usage: dict[str, Any], path: str) -> Decimal:
    """The card's prices applied to the usage the fake reported, in its own wire terms."""
    if path == OPENAI_PATH:
        prompt, output = usage["prompt_tokens"], usage["completion_tokens"]
        cached = usage["prompt_tokens_details"]["cached_tokens"]
    else:
        cached = usage["cache_read_input_tokens"]
        prompt = usage["input_tokens"] + cached + usage["cache_creation_input_tokens"]
        output = usage["output_tokens"]
    p = PRICES[model]
    total = (prompt - cached) * p["input"] + cached * p["cached_input"] + output * p["output"]
    cost: Decimal = total / Decimal(1_000_000)
    return cost.quantize(Decimal("1e-9"), rounding=ROUND_HALF_EVEN)


def wire_usage(usage: dict[str, Any], path: str) -> tuple[int, int]:
    """(prompt tokens incl. cache, output tokens) as the gateway must report them."""
    if path == OPENAI_PATH:
        return usage["prompt_tokens"], usage["completion_tokens"]
    prompt = sum(usage[k] for k in ("input_tokens", "cache_read_input_tokens"))
    return prompt + usage["cache_creation_input_tokens"], usage["output_tokens"]


def assert_valid_messages_body(body: dict[str, Any]) -> None:
    """The body must be a Messages request the anthropic SDK's types accept, exactly."""
    adapter = _MESSAGES_STREAMING if body.get("stream") else _MESSAGES_NON_STREAMING
    assert materialize(adapter.validate_python(body)) == body


def assert_routing_headers(e2e: E2E, headers: Mapping[str, str], model: str) -> str:
    assert headers["x-modelyard-model"] == model
    decision = headers["x-modelyard-decision"]
    assert decision.startswith("dec_")
    e2e.decision_ids.append(decision)
    return decision


def assemble_tool_calls(chunks: list[Any]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function and delta.function.name) or ""
                call["arguments"] += (delta.function and delta.function.arguments) or ""
    return calls


async def ledger_records(e2e: E2E) -> list[CallRecord]:
    ledger = open_ledger(f"sqlite:///{e2e.ledger_path}")
    await ledger.open()
    try:
        return list(await ledger.records(limit=100_000))
    finally:
        await ledger.close()


# --- (a), (e): plain text, not streamed ---------------------------------------------


@pytest.mark.parametrize(("name", "path"), TARGETS)
def test_text_answer_with_usage_cost_and_decision(
    client: openai.OpenAI, e2e: E2E, name: str, path: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(model=name, messages=chat("hello there"))
    response = raw.parse()
    model = model_id(name)
    assert response.choices[0].message.content == "echo: hello there"
    assert response.choices[0].finish_reason == "stop"
    assert response.model == model
    sent = last_request(e2e, path)
    assert sent.usage is not None
    assert response.usage is not None
    usage = (response.usage.prompt_tokens, response.usage.completion_tokens)
    assert usage == wire_usage(sent.usage, path)
    cost = expected_cost(model, sent.usage, path)
    assert cost > 0
    assert Decimal(raw.headers["x-modelyard-cost-usd"]) == cost
    decision = assert_routing_headers(e2e, raw.headers, model)
    extra = response.model_extra or {}
    assert extra["modelyard"]["decision_id"] == decision
    assert Decimal(extra["modelyard"]["cost_usd"]) == cost


def test_openai_upstream_gets_upstream_model_and_key(client: openai.OpenAI, e2e: E2E) -> None:
    client.chat.completions.create(model=GPT, messages=chat("hi"), max_tokens=50, seed=7)
    sent = last_request(e2e, OPENAI_PATH)
    assert sent.body["model"] == "gpt-test"
    assert sent.body["max_tokens"] == 50
    assert sent.body["seed"] == 7  # unknown OpenAI parameters pass through
    assert sent.headers["authorization"] == "[redacted]"  # a key was sent; the fake checked it
    assert "modelyard" not in sent.body


def test_anthropic_upstream_gets_a_valid_messages_body(client: openai.OpenAI, e2e: E2E) -> None:
    client.chat.completions.create(
        model="claude", messages=chat("weather?"), tools=[WEATHER_TOOL], max_tokens=300
    )
    sent = last_request(e2e, ANTHROPIC_PATH)
    assert_valid_messages_body(sent.body)
    assert sent.body["model"] == "claude-test"
    assert sent.body["system"] == SYSTEM
    assert [m["role"] for m in sent.body["messages"]] == ["user"]
    assert sent.body["max_tokens"] == 300
    tool = WEATHER_TOOL["function"]
    assert sent.body["tools"] == [
        {
            "name": tool["name"],
            "description": tool["description"],
            "input_schema": tool["parameters"],
        }
    ]
    assert sent.headers["anthropic-version"]
    assert sent.headers["x-api-key"] == "[redacted]"
    assert "authorization" not in sent.headers


def test_anthropic_default_max_tokens_is_set(client: openai.OpenAI, e2e: E2E) -> None:
    client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "hi"}])
    sent = last_request(e2e, ANTHROPIC_PATH)
    assert_valid_messages_body(sent.body)
    assert isinstance(sent.body["max_tokens"], int)
    assert sent.body["max_tokens"] > 0
    assert "system" not in sent.body


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("name", "path"), TARGETS[:2])
def test_cached_prompt_tokens_are_billed_at_the_cached_rate(
    client: openai.OpenAI, e2e: E2E, name: str, path: str, stream: bool
) -> None:
    e2e.upstream.cached_tokens = 8
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=name,
            messages=chat("a somewhat longer prompt so that caching applies"),
            stream=stream,
            stream_options={"include_usage": True} if stream else openai.omit,
        )
    finally:
        e2e.upstream.cached_tokens = 0
    assert_routing_headers(e2e, raw.headers, name)
    parsed: Any = raw.parse()  # a Stream or a ChatCompletion, depending on `stream`
    if stream:
        last = list(parsed)[-1]
        usage, cost = last.usage, (last.model_extra or {})["modelyard"]["cost_usd"]
    else:
        usage, cost = parsed.usage, raw.headers["x-modelyard-cost-usd"]
    sent = last_request(e2e, path)
    assert sent.usage is not None
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 8
    assert (usage.prompt_tokens, usage.completion_tokens) == wire_usage(sent.usage, path)
    assert Decimal(cost) == expected_cost(name, sent.usage, path)
    no_cache = {**sent.usage, "prompt_tokens_details": {"cached_tokens": 0}}
    if path == ANTHROPIC_PATH:
        no_cache = {**sent.usage, "cache_read_input_tokens": 0, "input_tokens": usage.prompt_tokens}
    assert Decimal(cost) < expected_cost(name, no_cache, path)


# --- (b), (e): streaming -------------------------------------------------------------


@pytest.mark.parametrize(("name", "path"), TARGETS)
def test_stream_text_and_final_usage_chunk(
    client: openai.OpenAI, e2e: E2E, name: str, path: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=name,
        messages=chat("stream this please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    model = model_id(name)
    assert_routing_headers(e2e, raw.headers, model)
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream this please"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert all(c.usage is None for c in chunks[:-1])
    sent = last_request(e2e, path)
    assert sent.body["stream"] is True
    assert sent.usage is not None
    assert last.usage is not None
    usage = (last.usage.prompt_tokens, last.usage.completion_tokens)
    assert usage == wire_usage(sent.usage, path)
    extra = last.model_extra or {}
    assert Decimal(extra["modelyard"]["cost_usd"]) == expected_cost(model, sent.usage, path)
    assert {c.model for c in chunks} == {model}
    if path == ANTHROPIC_PATH:
        assert_valid_messages_body(sent.body)


def test_stream_without_include_usage_sends_no_usage_chunk(client: openai.OpenAI, e2e: E2E) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=CLAUDE, messages=chat("no usage"), stream=True
    )
    assert_routing_headers(e2e, raw.headers, CLAUDE)
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: no usage"


# --- (c), (e): tools -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "path"), TARGETS)
def test_tool_call_comes_back_parsed(client: openai.OpenAI, e2e: E2E, name: str, path: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=name, messages=chat("weather in Paris?"), tools=[WEATHER_TOOL]
    )
    assert_routing_headers(e2e, raw.headers, model_id(name))
    choice = raw.parse().choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert last_request(e2e, path).body["tools"]


@pytest.mark.parametrize(("name", "path"), TARGETS)
def test_streamed_tool_call_assembles_from_deltas(
    client: openai.OpenAI, e2e: E2E, name: str, path: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=name,
        messages=chat("weather in Paris?"),
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert_routing_headers(e2e, raw.headers, model_id(name))
    chunks = list(raw.parse())
    calls = assemble_tool_calls(chunks)
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1].usage is not None
    assert last_request(e2e, path).body["stream"] is True


@pytest.mark.parametrize(("name", "path"), TARGETS[:2])
def test_tool_result_turn_is_answered_in_text(
    client: openai.OpenAI, e2e: E2E, name: str, path: str
) -> None:
    messages = chat("weather in Paris?")
    first = client.chat.completions.create(model=name, messages=messages, tools=[WEATHER_TOOL])
    call = (first.choices[0].message.tool_calls or [])[0]
    assert call.type == "function"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    raw = client.chat.completions.with_raw_response.create(
        model=name, messages=messages, tools=[WEATHER_TOOL]
    )
    assert_routing_headers(e2e, raw.headers, name)
    second = raw.parse().choices[0]
    assert second.message.content == "tool said: 18C and sunny"
    assert second.finish_reason == "stop"
    sent = last_request(e2e, path).body
    if path == ANTHROPIC_PATH:
        assert_valid_messages_body(sent)
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        tool_use = sent["messages"][1]["content"][-1]
        assert tool_use == {
            "type": "tool_use",
            "id": call.id,
            "name": "get_weather",
            "input": {"city": "Paris"},
        }
        result = sent["messages"][2]["content"][0]
        assert (result["type"], result["tool_use_id"]) == ("tool_result", call.id)
    else:
        assert sent["messages"][-1]["tool_call_id"] == call.id


def test_openai_parameters_translate_into_a_valid_messages_body(
    client: openai.OpenAI, e2e: E2E
) -> None:
    messages: Any = [
        {"role": "developer", "content": "Rule one."},
        {"role": "system", "content": "Rule two."},
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
    ]
    response = client.chat.completions.create(
        model=CLAUDE,
        messages=messages,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        max_completion_tokens=77,
        user="user-42",
    )
    assert response.choices[0].message.content == "echo: first second"
    sent = last_request(e2e, ANTHROPIC_PATH).body
    # Current Claude models refuse temperature with top_p, so only temperature goes.
    assert "top_p" not in sent
    assert sent.pop("temperature") == 0.2
    assert_valid_messages_body(sent)
    assert sent["system"] == "Rule one.\n\nRule two."
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
        }
    ]
    assert (sent["max_tokens"], sent["stop_sequences"]) == (77, ["END"])
    assert sent["metadata"] == {"user_id": "user-42"}


def test_header_hints_and_request_id_reach_routing_and_the_ledger(
    client: openai.OpenAI, e2e: E2E
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=chat("hi"),
        extra_headers={"x-modelyard-policy": "best", "x-request-id": "req-e2e-1"},
    )
    assert_routing_headers(e2e, raw.headers, CLAUDE)
    assert raw.headers["x-request-id"] == "req-e2e-1"
    records = asyncio.run(ledger_records(e2e))
    mine = [r for r in records if r.request_id == "req-e2e-1"]
    assert [(r.model_id, r.policy, r.status) for r in mine] == [(CLAUDE, "best", "ok")]
    with pytest.raises(openai.BadRequestError, match="max-cost-usd"):
        client.chat.completions.create(
            model="auto", messages=chat("hi"), extra_headers={"x-modelyard-max-cost-usd": "cheap"}
        )


# --- (d), (e): JSON mode and JSON schema ---------------------------------------------


@pytest.mark.parametrize(("name", "path"), TARGETS[:2])
def test_json_object_mode_answers_json(
    client: openai.OpenAI, e2e: E2E, name: str, path: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=name, messages=chat("give json"), response_format={"type": "json_object"}
    )
    assert_routing_headers(e2e, raw.headers, name)
    assert json.loads(raw.parse().choices[0].message.content or "") == {"echo": "give json"}
    sent = last_request(e2e, path).body
    if path == OPENAI_PATH:
        assert sent["response_format"] == {"type": "json_object"}
    else:
        assert_valid_messages_body(sent)
        assert "JSON" in sent["system"]


@pytest.mark.parametrize(("name", "path"), TARGETS[:2])
@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_answers_matching_json(
    client: openai.OpenAI, e2e: E2E, name: str, path: str, stream: bool
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=name, messages=chat("facts about Paris"), response_format=CITY_SCHEMA, stream=stream
    )
    assert_routing_headers(e2e, raw.headers, name)
    parsed: Any = raw.parse()  # a Stream or a ChatCompletion, depending on `stream`
    if stream:
        chunks = list(parsed)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        assert not assemble_tool_calls(chunks)
    else:
        choice = parsed.choices[0]
        content, finish = choice.message.content or "", choice.finish_reason
        assert not choice.message.tool_calls
    assert json.loads(content) == {"city": "Paris", "population": 1}
    assert finish == "stop"
    sent = last_request(e2e, path).body
    if path == ANTHROPIC_PATH:
        assert_valid_messages_body(sent)
        assert sent["tool_choice"]["name"] == "city_facts"


# --- (f): auto routing and /v1/route -------------------------------------------------


def test_auto_routes_to_the_cheapest_capable_model(client: openai.OpenAI, e2e: E2E) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=chat("hi"))
    assert_routing_headers(e2e, raw.headers, GPT)
    assert raw.parse().choices[0].message.content == "echo: hi"


def test_named_policy_routes_to_its_model(client: openai.OpenAI, e2e: E2E) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude-first", messages=chat("hi")
    )
    assert_routing_headers(e2e, raw.headers, CLAUDE)


def test_route_endpoint_explains_the_decision(e2e: E2E) -> None:
    before = len(e2e.upstream.requests)
    body = {"model": "auto", "messages": chat("hi"), "tools": [WEATHER_TOOL]}
    answer = httpx.post(f"{e2e.gateway_url}/v1/route", json=body, timeout=10).json()
    assert answer["outcome"] == "routed"
    decision = answer["decision"]
    assert decision["policy"] == "auto"
    assert decision["decision_id"].startswith("dec_")
    assert [c["model"] for c in decision["candidates"]] == [GPT, CLAUDE]
    assert [c["rank"] for c in decision["candidates"]] == [1, 2]
    assert all("expected cost" in c["reason"] for c in decision["candidates"])
    assert "tools" in decision["requirements"]["capabilities"]
    assert len(e2e.upstream.requests) == before  # a dry run calls no model


def test_models_and_health_list_the_stack(e2e: E2E) -> None:
    models = httpx.get(f"{e2e.gateway_url}/v1/models", timeout=10).json()
    ids = {m["id"] for m in models["data"]}
    assert {GPT, CLAUDE, "claude", "gpt", "auto", "claude-first"} <= ids
    health = httpx.get(f"{e2e.gateway_url}/health", timeout=10).json()
    assert health["providers"] == {
        "fake-anthropic": {"enabled": True, "reason": None},
        "fake-openai": {"enabled": True, "reason": None},
    }


# --- (g): error paths through the SDK ------------------------------------------------


def test_unknown_model_is_not_found_with_the_known_names(client: openai.OpenAI, e2e: E2E) -> None:
    before = len(e2e.upstream.requests)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=chat("hi"))
    message = info.value.message
    assert "unknown model 'no-such-model'" in message
    assert GPT in message
    assert "claude" in message
    assert len(e2e.upstream.requests) == before


def test_empty_messages_is_a_bad_request(client: openai.OpenAI, e2e: E2E) -> None:
    before = len(e2e.upstream.requests)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=GPT, messages=[])
    assert info.value.status_code == 400
    assert "messages" in info.value.message
    assert len(e2e.upstream.requests) == before


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("name", "path", "body"),
    [
        (
            GPT,
            OPENAI_PATH,
            {"error": {"message": "bad temperature", "type": "invalid_request_error"}},
        ),
        (
            CLAUDE,
            ANTHROPIC_PATH,
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "bad temperature"},
            },
        ),
    ],
)
def test_upstream_400_on_the_only_candidate_reaches_the_caller(
    client: openai.OpenAI, e2e: E2E, name: str, path: str, body: Any, stream: bool
) -> None:
    e2e.upstream.script.push(path, status=400, body=body)
    before = len(e2e.upstream.requests_to(path))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=name, messages=chat("hi"), stream=stream)
    assert info.value.status_code == 400
    assert "bad temperature" in info.value.message
    assert len(e2e.upstream.requests_to(path)) == before + 1  # not retried, no fallback
    assert e2e.upstream.script.pending() == 0


@pytest.mark.parametrize(
    ("name", "path", "body"),
    [
        (GPT, OPENAI_PATH, {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}"}}),
        (
            CLAUDE,
            ANTHROPIC_PATH,
            {
                "type": "error",
                "error": {
                    "type": "authentication_error",
                    "message": f"invalid x-api-key {ANTHROPIC_KEY}",
                },
            },
        ),
    ],
)
def test_upstream_auth_error_never_shows_the_key(
    client: openai.OpenAI, e2e: E2E, name: str, path: str, body: Any
) -> None:
    e2e.upstream.script.push(path, status=401, body=body)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=name, messages=chat("hi"))
    assert info.value.status_code == 502
    text = info.value.response.text
    assert "[redacted]" in text
    assert OPENAI_KEY not in text
    assert ANTHROPIC_KEY not in text


@pytest.mark.parametrize(
    ("policy", "path", "status", "error", "answered_by"),
    [
        ("auto", OPENAI_PATH, 429, "ProviderRateLimitError", CLAUDE),
        ("auto", OPENAI_PATH, 500, "ProviderServerError", CLAUDE),
        ("claude-first", ANTHROPIC_PATH, 529, "ProviderOverloadedError", GPT),
    ],
)
def test_failing_primary_falls_back_to_the_next_model(
    client: openai.OpenAI,
    e2e: E2E,
    policy: str,
    path: str,
    status: int,
    error: str,
    answered_by: str,
) -> None:
    primary = GPT if answered_by == CLAUDE else CLAUDE
    e2e.upstream.script.push(path, status=status, headers={"retry-after": "0"}, body={})
    raw = client.chat.completions.with_raw_response.create(model=policy, messages=chat("hi"))
    assert_routing_headers(e2e, raw.headers, answered_by)
    assert raw.headers["x-modelyard-failed-attempts"] == f"{primary}:{error}"
    assert raw.parse().choices[0].message.content == "echo: hi"
    assert last_request(e2e, path).scripted


# --- mid-stream failures -------------------------------------------------------------


def openai_sse(*texts: str, done: bool) -> list[str]:
    """SSE events of an OpenAI stream that says `texts`, ending with [DONE] if `done`."""
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-test"}
    events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    events += [{**head, "choices": [{"index": 0, "delta": {"content": t}}]} for t in texts]
    return [f"data: {json.dumps(e)}\n\n" for e in events] + (["data: [DONE]\n\n"] if done else [])


def anthropic_sse(*texts: str) -> list[str]:
    """An Anthropic stream that says `texts`, then fails with an `overloaded_error` event."""
    message: dict[str, Any] = {"id": "m1", "type": "message", "role": "assistant"}
    message["model"] = "claude-test"
    message |= {"content": [], "stop_reason": None, "stop_sequence": None}
    message["usage"] = {"input_tokens": 5, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        for t in texts
    ]
    events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events]


@pytest.mark.parametrize(
    ("model", "path", "chunks", "cause"),
    [
        (GPT, OPENAI_PATH, openai_sse("partial", " answer", done=False), "before \\[DONE\\]"),
        (CLAUDE, ANTHROPIC_PATH, anthropic_sse("partial", " answer"), "Overloaded"),
    ],
)
def test_stream_failing_after_content_ends_with_an_error_event(
    client: openai.OpenAI, e2e: E2E, model: str, path: str, chunks: list[str], cause: str
) -> None:
    e2e.upstream.script.push(path, chunks=chunks)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=chat("hi"), stream=True
    )
    assert_routing_headers(e2e, raw.headers, model)
    text = ""
    with pytest.raises(openai.APIError, match="stream interrupted after partial output") as info:
        for chunk in raw.parse():
            text += chunk.choices[0].delta.content or ""
    assert re.search(cause, info.value.message)
    assert text == "partial answer"


async def test_caller_disconnect_mid_stream_is_billed_as_cancelled(e2e: E2E) -> None:
    texts = [f"word{i} " for i in range(20)]
    e2e.upstream.script.push(OPENAI_PATH, chunks=openai_sse(*texts, done=True), chunk_delay_s=0.05)
    body = {"model": GPT, "messages": chat("hi"), "stream": True}
    async with (
        httpx.AsyncClient(base_url=e2e.gateway_url, timeout=10) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        decision = assert_routing_headers(e2e, response.headers, GPT)
        async for line in response.aiter_lines():
            if "word0" in line:
                break  # leaving the block closes the connection mid-stream
    for _ in range(100):
        mine = [r for r in await ledger_records(e2e) if r.decision_id == decision]
        if mine:
            break
        await asyncio.sleep(0.05)
    assert [r.status for r in mine] == ["cancelled"]
    assert mine[0].streamed
    assert 0 < mine[0].output_tokens < 20 * 2  # what was streamed, not the whole answer
    assert mine[0].cost_usd > 0


# --- (h): the ledger -----------------------------------------------------------------


async def test_ledger_has_one_exact_record_per_upstream_call(
    client: openai.OpenAI, e2e: E2E
) -> None:
    # Calls of its own, so the check is meaningful whatever ran before.
    for name in (GPT, CLAUDE):
        raw = client.chat.completions.with_raw_response.create(model=name, messages=chat("x"))
        e2e.decision_ids.append(raw.headers["x-modelyard-decision"])
    records = await ledger_records(e2e)
    received = list(e2e.upstream.requests)
    assert len(records) == len(received)
    by_deployment = {"fake-openai": OPENAI_PATH, "fake-anthropic": ANTHROPIC_PATH}
    # Tests run one call at a time, so the n-th attempt billed is the n-th request received.
    for record, request in zip(records, received, strict=True):
        assert by_deployment[record.deployment] == request.path
        if request.scripted:
            assert record.status != "ok"
            assert record.error_class or record.status == "cancelled"
            continue
        assert request.usage is not None
        assert record.status == "ok"
        assert record.error_class is None
        assert record.upstream_model == request.body["model"]
        assert (record.input_tokens, record.output_tokens) == wire_usage(
            request.usage, request.path
        )
        assert record.cost_usd == expected_cost(record.model_id, request.usage, request.path)
        assert record.cost_usd > 0
    assert set(e2e.decision_ids) <= {r.decision_id for r in records}
    for record in records:
        text = repr(record) + json.dumps(record.reasons)
        assert OPENAI_KEY not in text
        assert ANTHROPIC_KEY not in text
