"""AnthropicMessagesAdapter against a mock Anthropic API (httpx.MockTransport).

Every request the adapter builds is validated against the official SDK's
`MessageCreateParams` types, and every fixture response against the SDK's response
types, so both directions of the translation are checked against Anthropic's shapes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic.types
import httpx
import pytest
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from pydantic import TypeAdapter

from modelyard.errors import (
    InvalidRequestError,
    ModelyardError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderServerError,
    UpstreamRequestError,
)
from modelyard.providers.anthropic import ANTHROPIC_VERSION, AnthropicMessagesAdapter
from modelyard.providers.anthropic_stream import StreamTranslator
from modelyard.providers.anthropic_wire import DEFAULT_MAX_TOKENS
from modelyard.providers.base import ChatProvider, DeploymentSettings
from modelyard.types import ChatRequest, Chunk, FunctionCall, ToolCall, ToolCallDelta, Usage

from .anthropic_fixtures import (
    API_KEY,
    MESSAGE_JSON_TOOL,
    MESSAGE_TEXT,
    MESSAGE_TOOL_USE,
    STREAM_ERROR_EVENT,
    STREAM_JSON_TOOL,
    STREAM_TEXT_AND_TOOL,
    error_body,
    sse,
)

SETTINGS = DeploymentSettings(
    name="anthropic-test",
    base_url="https://api.anthropic.test",
    api_key=API_KEY,
    timeout_s=42.0,
)
MODEL = "claude-sonnet-4-5-20250929"
PNG_B64 = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "city_facts", "schema": CITY_SCHEMA, "strict": True},
}

# --------------------------------------------------------------------------- helpers

_NON_STREAMING = TypeAdapter(MessageCreateParamsNonStreaming)
_STREAMING = TypeAdapter(MessageCreateParamsStreaming)
# API version 2023-06-01, which the adapter pins, takes temperature and top_p; the
# installed SDK targets a later version that dropped them, so its types lack them.
_SAMPLING_KEYS = {"temperature", "top_p"}


def _materialize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | Iterator):
        return [_materialize(v) for v in value]
    return value


def assert_valid_request(body: dict[str, Any]) -> None:
    """Fail unless `body` is a Messages request the official SDK types accept, exactly.

    The SDK's TypedDicts validate `Iterable` fields lazily and drop unknown keys
    silently, so the result is materialized (forcing nested validation) and must
    equal the input: a dropped or coerced key anywhere shows as a difference.
    """
    adapter = _STREAMING if body.get("stream") else _NON_STREAMING
    checked = {k: v for k, v in body.items() if k not in _SAMPLING_KEYS}
    assert _materialize(adapter.validate_python(checked)) == checked


def chat(*messages: dict[str, Any], **fields: Any) -> ChatRequest:
    if not messages:
        messages = ({"role": "user", "content": "Hello"},)
    return ChatRequest.model_validate({"messages": list(messages), **fields})


class Upstream:
    """A mock Anthropic API: checks each request's URL and headers, records it, and
    answers with `respond(request)`."""

    def __init__(
        self,
        respond: Callable[[httpx.Request], httpx.Response],
        *,
        url: str = "https://api.anthropic.test/v1/messages",
        api_key: str | None = API_KEY,
    ) -> None:
        self.respond = respond
        self.url = url
        self.api_key = api_key
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.method == "POST"
        assert str(request.url) == self.url
        assert request.headers["anthropic-version"] == ANTHROPIC_VERSION
        assert request.headers["content-type"] == "application/json"
        assert request.headers.get("x-api-key") == self.api_key
        return self.respond(request)

    @property
    def body(self) -> dict[str, Any]:
        assert len(self.requests) == 1
        body: dict[str, Any] = json.loads(self.requests[0].content)
        assert_valid_request(body)
        return body


def json_reply(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(status, json=payload, headers=headers)


def sse_reply(raw: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(
        200, content=raw, headers={"content-type": "text/event-stream; charset=utf-8"}
    )


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., AnthropicMessagesAdapter]]:
    clients: list[httpx.AsyncClient] = []

    def make(
        upstream: Upstream, settings: DeploymentSettings = SETTINGS
    ) -> AnthropicMessagesAdapter:
        client = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
        clients.append(client)
        return AnthropicMessagesAdapter(settings, client)

    yield make
    for client in clients:
        await client.aclose()


async def collect(adapter: AnthropicMessagesAdapter, request: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in adapter.stream(request, MODEL)]


async def drain(adapter: AnthropicMessagesAdapter, into: list[Chunk]) -> None:
    async for chunk in adapter.stream(chat(), MODEL):
        into.append(chunk)


async def answer(adapter: AnthropicMessagesAdapter, streamed: bool) -> object:
    """Call the adapter either way, so error tests cover `complete` and `stream` alike."""
    if streamed:
        return await collect(adapter, chat())
    return await adapter.complete(chat(), MODEL)


# --------------------------------------------------------------------------- fixtures


def test_fixtures_match_the_sdk_types() -> None:
    for body in (MESSAGE_TEXT, MESSAGE_TOOL_USE, MESSAGE_JSON_TOOL):
        anthropic.types.Message.model_validate(body)
    events = TypeAdapter(anthropic.types.RawMessageStreamEvent)
    for name, data in STREAM_TEXT_AND_TOOL + STREAM_JSON_TOOL:
        assert name == data["type"]
        if name == "ping":
            # Not part of the SDK's event union: its stream reader skips pings by name.
            with pytest.raises(ValueError, match="validation error"):
                events.validate_python(data)
        else:
            events.validate_python(data)
    anthropic.types.ErrorResponse.model_validate(STREAM_ERROR_EVENT)
    for kind in ("invalid_request_error", "authentication_error", "rate_limit_error"):
        anthropic.types.ErrorResponse.model_validate(error_body(kind, "x"))


# --------------------------------------------------------------------------- requests


async def test_complete_posts_messages_request_and_parses_answer(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    request = chat(
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "Hello"},
    )
    adapter = connect(upstream)
    assert isinstance(adapter, ChatProvider)
    completion = await adapter.complete(request, MODEL)

    assert upstream.body == {
        "model": MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "system": "You are terse.\n\nAnswer in English.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "stream": False,
    }
    assert upstream.requests[0].extensions["timeout"] == {
        **dict.fromkeys(("read", "write", "pool"), 42.0),
        "connect": 10.0,
    }
    assert completion.id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert completion.model == MODEL
    assert completion.content == "Hi! My name is Claude."
    assert completion.tool_calls == ()
    assert completion.finish_reason == "stop"


async def test_usage_counts_cache_reads_and_writes_as_input(connect) -> None:
    completion = await connect(Upstream(json_reply(MESSAGE_TEXT))).complete(chat(), MODEL)
    # Anthropic's input_tokens (2095) excludes the 1800 read from and 120 written to cache.
    assert completion.usage == Usage(
        input_tokens=2095 + 1800 + 120,
        output_tokens=503,
        cached_input_tokens=1800,
        cache_write_tokens=120,
    )


async def test_same_role_turns_merge_and_tool_results_come_first(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    request = chat(
        {"role": "user", "content": "First."},
        {"role": "user", "content": [{"type": "text", "text": "Second."}]},
        {"role": "assistant", "content": "Reply one."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                },
            ],
        },
        {"role": "user", "content": "Meanwhile..."},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C, cloudy"},
        tools=[WEATHER_TOOL],
    )
    await connect(upstream).complete(request, MODEL)

    assert upstream.body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reply one."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C, cloudy"},
                {"type": "text", "text": "Meanwhile..."},
            ],
        },
    ]


async def test_images_as_base64_data_url_and_http_url(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    request = chat(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these."},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
                },
            ],
        }
    )
    await connect(upstream).complete(request, MODEL)

    assert upstream.body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "url",
    ["data:image/bmp;base64,Qk0=", "data:image/png,rawbytes", "ftp://example.com/cat.png"],
)
async def test_unsupported_image_urls_are_rejected_before_sending(connect, url: str) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    request = chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]})
    with pytest.raises(InvalidRequestError, match="base64 data URLs"):
        await connect(upstream).complete(request, MODEL)
    assert upstream.requests == []


async def test_audio_part_is_an_invalid_request(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    request = chat({"role": "user", "content": [{"type": "text", "text": "Transcribe"}, audio]})
    with pytest.raises(InvalidRequestError, match="does not accept audio") as info:
        await connect(upstream).complete(request, MODEL)
    assert info.value.status_code == 400
    with pytest.raises(InvalidRequestError, match="does not accept audio"):
        await collect(connect(upstream), request)
    assert upstream.requests == []


async def test_sampling_limits_and_metadata_map_and_extras_are_dropped(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    request = chat(
        temperature=1.7,  # above Anthropic's 0..1
        top_p=0.5,
        stop="END",
        user="user-8d1c",
        max_completion_tokens=300,
        seed=7,  # OpenAI passthrough extras: Anthropic would reject them
        logit_bias={"50256": -100},
    )
    await connect(upstream).complete(request, MODEL)

    assert upstream.body == {
        "model": MODEL,
        "max_tokens": 300,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "temperature": 1.0,  # clamped; top_p dropped because newer models reject both
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-8d1c"},
        "stream": False,
    }


async def test_top_p_alone_and_stop_list_are_sent(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    await connect(upstream).complete(chat(top_p=0.9, stop=["\n\n", "END"], max_tokens=50), MODEL)
    body = upstream.body
    assert (body["top_p"], body["stop_sequences"], body["max_tokens"]) == (0.9, ["\n\n", "END"], 50)
    assert "temperature" not in body


async def test_tools_map_to_anthropic_definitions(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    bare = {"type": "function", "function": {"name": "now"}}
    await connect(upstream).complete(chat(tools=[WEATHER_TOOL, bare]), MODEL)

    assert upstream.body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in upstream.body


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
async def test_tool_choice_mapping(connect, tool_choice: Any, parallel: Any, expected: Any) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    fields = {"tool_choice": tool_choice, "parallel_tool_calls": parallel}
    request = chat(tools=[WEATHER_TOOL], **{k: v for k, v in fields.items() if v is not None})
    await connect(upstream).complete(request, MODEL)
    assert upstream.body["tool_choice"] == expected


async def test_tool_use_answer_becomes_tool_calls(connect) -> None:
    completion = await connect(Upstream(json_reply(MESSAGE_TOOL_USE))).complete(
        chat(tools=[WEATHER_TOOL]), MODEL
    )
    assert completion.content == "I'll check the current weather in San Francisco for you."
    assert completion.tool_calls == (
        ToolCall(
            id="toolu_01A09q90qw90lq917835lq9",
            function=FunctionCall(
                name="get_weather",
                arguments=json.dumps({"location": "San Francisco, CA", "unit": "celsius"}),
            ),
        ),
    )
    assert completion.finish_reason == "tool_calls"


async def test_invalid_tool_call_arguments_name_the_call(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    call = {
        "id": "call_bad",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{not json"},
    }
    request = chat(
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_bad", "content": "?"},
    )
    with pytest.raises(InvalidRequestError, match="call_bad"):
        await connect(upstream).complete(request, MODEL)
    assert upstream.requests == []


async def test_json_object_mode_adds_a_system_instruction(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TEXT))
    request = chat(
        {"role": "system", "content": "Extract facts."},
        {"role": "user", "content": "Zürich"},
        response_format={"type": "json_object"},
    )
    await connect(upstream).complete(request, MODEL)
    system = upstream.body["system"]
    assert system.startswith("Extract facts.\n\n")
    assert "single valid JSON object" in system
    assert "tools" not in upstream.body


async def test_json_schema_forces_the_schema_tool_and_answers_as_text(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_JSON_TOOL))
    request = chat(response_format=JSON_SCHEMA_FORMAT)
    completion = await connect(upstream).complete(request, MODEL)

    [tool] = upstream.body["tools"]
    assert (tool["name"], tool["input_schema"]) == ("city_facts", CITY_SCHEMA)
    assert upstream.body["tool_choice"] == {
        "type": "tool",
        "name": "city_facts",
        "disable_parallel_tool_use": True,
    }
    assert completion.content is not None
    assert json.loads(completion.content) == {"city": "Zürich", "population": 421878}
    assert completion.tool_calls == ()
    assert completion.finish_reason == "stop"


async def test_json_schema_with_caller_tools_keeps_them_callable(connect) -> None:
    upstream = Upstream(json_reply(MESSAGE_TOOL_USE))
    request = chat(tools=[WEATHER_TOOL], response_format=JSON_SCHEMA_FORMAT)
    completion = await connect(upstream).complete(request, MODEL)

    assert [t["name"] for t in upstream.body["tools"]] == ["get_weather", "city_facts"]
    assert upstream.body["tool_choice"] == {"type": "any"}
    assert [c.function.name for c in completion.tool_calls] == ["get_weather"]
    assert completion.finish_reason == "tool_calls"


async def test_json_schema_streams_the_tool_input_as_content(connect) -> None:
    upstream = Upstream(sse_reply(sse(STREAM_JSON_TOOL)))
    chunks = await collect(connect(upstream), chat(response_format=JSON_SCHEMA_FORMAT))

    assert upstream.body["stream"] is True
    assert upstream.body["tool_choice"]["name"] == "city_facts"
    assert all(not c.tool_calls for c in chunks)
    text = "".join(c.content or "" for c in chunks)
    assert json.loads(text) == {"city": "Zürich", "population": 421878}
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == Usage(input_tokens=310, output_tokens=41)


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
async def test_stop_reason_mapping(connect, stop_reason: str, expected: str) -> None:
    body = copy.deepcopy(MESSAGE_TOOL_USE)
    body["stop_reason"] = stop_reason
    anthropic.types.Message.model_validate(body)  # a documented stop_reason
    completion = await connect(Upstream(json_reply(body))).complete(chat(), MODEL)
    assert completion.finish_reason == expected


# --------------------------------------------------------------------------- streaming


async def test_stream_full_event_sequence(connect) -> None:
    upstream = Upstream(sse_reply(sse(STREAM_TEXT_AND_TOOL)))
    chunks = await collect(connect(upstream), chat(tools=[WEATHER_TOOL]))

    assert upstream.body["stream"] is True
    assert chunks == [
        Chunk(content="Okay, let's check"),
        Chunk(content=" the weather."),
        # Content block 1 is the stream's first tool_use block: tool index 0.
        Chunk(
            tool_calls=(
                ToolCallDelta(
                    index=0, id="toolu_01T1x1fJ34qAmk2tNTrN7Up6", name="get_weather", arguments=""
                ),
            )
        ),
        Chunk(tool_calls=(ToolCallDelta(index=0, arguments='{"location":'),)),
        Chunk(tool_calls=(ToolCallDelta(index=0, arguments=' "San Francisco, CA"}'),)),
        Chunk(
            finish_reason="tool_calls",
            usage=Usage(input_tokens=472 + 1024, output_tokens=89, cached_input_tokens=1024),
        ),
    ]


async def test_stream_error_event_raises_overloaded_after_content(connect) -> None:
    events = [*STREAM_TEXT_AND_TOOL[:4], ("error", STREAM_ERROR_EVENT)]
    received: list[Chunk] = []
    with pytest.raises(ProviderOverloadedError, match="Overloaded") as info:
        await drain(connect(Upstream(sse_reply(sse(events)))), received)
    assert received == [Chunk(content="Okay, let's check")]
    assert info.value.provider == "anthropic-test"
    assert info.value.retryable


@pytest.mark.parametrize(
    ("error_type", "error_class", "retryable"),
    [
        ("rate_limit_error", ProviderRateLimitError, True),
        ("api_error", ProviderServerError, True),
        ("invalid_request_error", UpstreamRequestError, False),
        ("authentication_error", ProviderAuthError, True),
        ("some_new_error", ProviderServerError, True),
    ],
)
async def test_stream_error_event_types_map_like_their_statuses(
    connect, error_type: str, error_class: type[ProviderError], retryable: bool
) -> None:
    event = {"type": "error", "error": {"type": error_type, "message": "went wrong"}}
    raw = sse([*STREAM_TEXT_AND_TOOL[:2], ("error", event)])
    with pytest.raises(error_class, match="went wrong") as info:
        await collect(connect(Upstream(sse_reply(raw))), chat())
    assert type(info.value) is error_class
    assert info.value.retryable is retryable


@pytest.mark.parametrize(
    "raw",
    [
        sse(STREAM_TEXT_AND_TOOL[:-1]),  # everything but message_stop
        sse(STREAM_TEXT_AND_TOOL)[:-60],  # cut inside the last events
        b"",
    ],
)
async def test_stream_truncated_before_message_stop(connect, raw: bytes) -> None:
    with pytest.raises(ProviderResponseError):
        await collect(connect(Upstream(sse_reply(raw))), chat())


def test_translator_ignores_thinking_blocks_and_unknown_events() -> None:
    translator = StreamTranslator()
    feed = [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Hmm."},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "EqQB"},
            },
        ),
        ("some_future_event", {"type": "some_future_event"}),
    ]
    assert [translator.feed(name, json.dumps(data)) for name, data in feed] == [None] * 4
    assert not translator.finished


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "error_type", "message", "headers", "error_class"),
    [
        (
            400,
            "invalid_request_error",
            "max_tokens: 100000 > 64000, the maximum for this model",
            {},
            UpstreamRequestError,
        ),
        (401, "authentication_error", "invalid x-api-key", {}, ProviderAuthError),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            {"retry-after": "7"},
            ProviderRateLimitError,
        ),
        (500, "api_error", "Internal server error", {}, ProviderServerError),
        (529, "overloaded_error", "Overloaded", {}, ProviderOverloadedError),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_error_statuses(
    connect,
    streamed: bool,
    status: int,
    error_type: str,
    message: str,
    headers: dict[str, str],
    error_class: type[ProviderError],
) -> None:
    adapter = connect(Upstream(json_reply(error_body(error_type, message), status, headers)))
    with pytest.raises(error_class) as info:
        await answer(adapter, streamed)

    exc = info.value
    assert type(exc) is error_class
    assert exc.upstream_status == status
    assert exc.provider == "anthropic-test"
    assert message in str(exc)
    if status == 400:
        assert exc.message == message  # the caller sees Anthropic's words as they are
        assert exc.http_status == 400
        assert not exc.retryable
    else:
        assert exc.retryable
    if status == 429:
        assert isinstance(exc, ProviderRateLimitError)
        assert exc.retry_after == 7


@pytest.mark.parametrize(
    ("reply", "error_class", "message"),
    [
        (
            lambda _: httpx.Response(502, text="<html><body>Bad Gateway</body></html>"),
            ProviderServerError,
            "Bad Gateway",
        ),
        (json_reply({"detail": "nope"}, 503), ProviderServerError, "HTTP 503 without an error"),
        (json_reply({"detail": "nope"}, 404), UpstreamRequestError, "HTTP 404 without an error"),
    ],
)
async def test_undocumented_error_bodies_still_map_by_status(
    connect, reply: Any, error_class: type[ProviderError], message: str
) -> None:
    with pytest.raises(error_class, match=message) as info:
        await connect(Upstream(reply)).complete(chat(), MODEL)
    assert type(info.value) is error_class


async def test_connect_error_is_a_provider_connection_error(connect) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    for streamed in (False, True):
        adapter = connect(Upstream(refuse))
        with pytest.raises(ProviderConnectionError) as info:
            await answer(adapter, streamed)
        assert info.value.retryable
        assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    "reply",
    [
        lambda _: httpx.Response(200, content=b"<html>gateway</html>"),
        json_reply({"type": "message", "id": "msg_1", "model": MODEL}),  # no content, no usage
        json_reply({**MESSAGE_TEXT, "content": [{"type": "tool_use", "id": "t", "name": "x"}]}),
        json_reply({**MESSAGE_TEXT, "usage": {"input_tokens": "many", "output_tokens": 1}}),
        json_reply({**MESSAGE_TEXT, "usage": {"input_tokens": True, "output_tokens": 1}}),
    ],
)
async def test_malformed_answer_is_a_provider_response_error(connect, reply: Any) -> None:
    with pytest.raises(ProviderResponseError, match="anthropic-test"):
        await connect(Upstream(reply)).complete(chat(), MODEL)


async def test_api_key_never_appears_in_errors(connect) -> None:
    echo = error_body("authentication_error", f"invalid x-api-key: {API_KEY}")
    leaky_event = {"type": "error", "error": {"type": "api_error", "message": f"bad key {API_KEY}"}}

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused ({request.headers['x-api-key']})", request=request)

    errors: list[ModelyardError] = []
    for upstream, streamed in [
        (Upstream(json_reply(echo, 401)), False),
        (Upstream(json_reply(echo, 401)), True),
        (Upstream(sse_reply(sse([("error", leaky_event)]))), True),
        (Upstream(refuse), False),
        (Upstream(sse_reply(b"event: message_start\ndata: {broken\n\n")), True),
    ]:
        with pytest.raises(ProviderError) as info:
            await answer(connect(upstream), streamed)
        errors.append(info.value)

    assert [type(e) for e in errors] == [
        ProviderAuthError,
        ProviderAuthError,
        ProviderServerError,
        ProviderConnectionError,
        ProviderResponseError,
    ]
    for exc in errors:
        assert API_KEY not in str(exc)
        assert API_KEY not in repr(exc.args)
        assert API_KEY not in json.dumps(exc.to_openai())
    assert "[redacted]" in str(errors[0])


async def test_no_key_extra_headers_and_base_url_with_path(connect) -> None:
    settings = DeploymentSettings(
        name="gateway",
        base_url="https://gateway.example/anthropic/",
        extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
    )
    upstream = Upstream(
        json_reply(MESSAGE_TEXT), url="https://gateway.example/anthropic/v1/messages", api_key=None
    )
    await connect(upstream, settings).complete(chat(), MODEL)
    headers = upstream.requests[0].headers
    assert "x-api-key" not in headers
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
