"""The OpenAI chat-completions adapter, end to end through `httpx.MockTransport`.

Response fixtures reproduce the bodies OpenAI documents for `chat.completion`,
`chat.completion.chunk` and errors, and are validated against the official SDK's
types so their shapes are proven rather than remembered.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai.types
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from modelyard.errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
    UpstreamRequestError,
)
from modelyard.providers.base import ChatProvider, DeploymentSettings
from modelyard.providers.openai import OpenAIChatAdapter
from modelyard.providers.openai_wire import (
    build_body,
    error_message,
    iter_sse_data,
    map_finish_reason,
    parse_chunk,
    parse_completion,
    parse_usage,
)
from modelyard.types import ChatRequest, Chunk, Message, ToolCall, Usage

KEY = "sk-proj-T3stK3yZq8vK3mN0pR7sT2uW5xY9aB4cD6eF1gH"
BASE_URL = "https://api.openai.com/v1"
URL = f"{BASE_URL}/chat/completions"
TIMEOUT_S = 12.5

Handler = Callable[[httpx.Request], httpx.Response]

# --------------------------------------------------------------------------------------
# Documented OpenAI bodies
# --------------------------------------------------------------------------------------

# API reference "The chat completion object", usage from the prompt-caching guide.
TEXT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_44709d6fcb",
}

# API reference, "Functions" example response.
TOOL_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1699896916,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {
                            "name": "get_current_weather",
                            "arguments": '{\n"location": "Boston, MA"\n}',
                        },
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 82,
        "completion_tokens": 17,
        "total_tokens": 99,
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
}

JSON_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-9nYAG9LPNonX8DAyrkwYfemr3C8HC",
    "object": "chat.completion",
    "created": 1721596428,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": '{"city":"Boston","temperature_c":5}',
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 81, "completion_tokens": 11, "total_tokens": 92},
    "system_fingerprint": "fp_3407719c7f",
}


def _chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    # Every chunk repeats these; with include_usage, all but the last carry `usage: null`.
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": choices,
        "usage": usage,
    }


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


STREAM_USAGE = {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}

TEXT_CHUNKS = [
    _chunk([_delta({"role": "assistant", "content": "", "refusal": None})]),
    _chunk([_delta({"content": "Hello"})]),
    _chunk([_delta({"content": "!"})]),
    _chunk([_delta({"content": " How can I help?"})]),
    _chunk([_delta({}, "stop")]),
    _chunk([], STREAM_USAGE),
]


def _tool_delta(index: int, **fields: Any) -> dict[str, Any]:
    return _delta({"tool_calls": [{"index": index, **fields}]})


# Function-calling guide, "Streaming": id and name once, then argument fragments.
TOOL_CHUNKS = [
    _chunk([_delta({"role": "assistant", "content": None, "refusal": None})]),
    _chunk(
        [
            _tool_delta(
                0,
                id="call_DdmO9pD3xa9XTPNJ32zg2hcA",
                type="function",
                function={"name": "get_weather", "arguments": ""},
            )
        ]
    ),
    _chunk([_tool_delta(0, function={"arguments": '{"'})]),
    _chunk([_tool_delta(0, function={"arguments": "location"})]),
    _chunk([_tool_delta(0, function={"arguments": '":"'})]),
    _chunk([_tool_delta(0, function={"arguments": "Paris, France"})]),
    _chunk(
        [
            _tool_delta(
                1,
                id="call_7cJz3kqf2wZ8Yx1nB5vR0aLm",
                type="function",
                function={"name": "get_time", "arguments": '{"tz":'},
            )
        ]
    ),
    _chunk([_tool_delta(0, function={"arguments": '"}'})]),
    _chunk([_tool_delta(1, function={"arguments": '"Europe/Paris"}'})]),
    _chunk([_delta({}, "tool_calls")]),
    _chunk([], {"prompt_tokens": 84, "completion_tokens": 38, "total_tokens": 122}),
]

# Error bodies as OpenAI documents and sends them.
CONTEXT_LENGTH_MESSAGE = (
    "This model's maximum context length is 128000 tokens. However, your messages "
    "resulted in 130034 tokens. Please reduce the length of the messages."
)
ERROR_BODIES: dict[str, dict[str, Any]] = {
    "context_length": {
        "error": {
            "message": CONTEXT_LENGTH_MESSAGE,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    },
    "invalid_api_key": {
        "error": {
            "message": "Incorrect API key provided: sk-proj-********************gH. "
            "You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    },
    "model_not_found": {
        "error": {
            "message": "The model `gpt-9` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    },
    "rate_limit": {
        "error": {
            "message": "Rate limit reached for gpt-4o in organization org-abc on tokens per "
            "min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2s.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    },
    "server_error": {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    },
    "overloaded": {
        "error": {
            "message": "The engine is currently overloaded, please try again later.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    },
}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _assert_no_extras(model: Any) -> None:
    # The SDK's models accept unknown keys; an empty `model_extra` everywhere proves
    # every key in a fixture is one the SDK (hence the API) defines.
    if isinstance(model, BaseModel):
        assert not model.model_extra, f"{type(model).__name__} has unknown {model.model_extra}"
        for name in type(model).model_fields:
            _assert_no_extras(getattr(model, name))
    elif isinstance(model, list):
        for item in model:
            _assert_no_extras(item)


def sse(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    """An SSE body as OpenAI frames it: `data: <json>` then a blank line."""
    frames = [json.dumps(e) if isinstance(e, dict) else e for e in events]
    if done:
        frames.append("[DONE]")
    return "".join(f"data: {f}\n\n" for f in frames).encode()


def sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


class Recorder:
    """A MockTransport handler that records requests and answers with `response`."""

    def __init__(self, response: httpx.Response | Callable[[], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self._response = response

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self._response
        return response() if callable(response) else response

    @property
    def body(self) -> dict[str, Any]:
        assert len(self.requests) == 1
        return json.loads(self.requests[0].content)  # type: ignore[no-any-return]


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., OpenAIChatAdapter]]:
    clients: list[httpx.AsyncClient] = []

    def factory(
        handler: Handler,
        *,
        api_key: str | None = KEY,
        base_url: str = BASE_URL,
        extra_headers: dict[str, str] | None = None,
    ) -> OpenAIChatAdapter:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        clients.append(client)
        settings = DeploymentSettings(
            name="openai-main",
            base_url=base_url,
            api_key=api_key,
            extra_headers=extra_headers or {},
            timeout_s=TIMEOUT_S,
        )
        return OpenAIChatAdapter(settings, client)

    yield factory
    for client in clients:
        await client.aclose()


def chat(**fields: Any) -> ChatRequest:
    fields.setdefault("messages", [{"role": "user", "content": "Hello!"}])
    return ChatRequest.model_validate(fields)


async def collect(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    return [chunk async for chunk in stream]


async def drain(adapter: OpenAIChatAdapter, into: list[Chunk]) -> None:
    """Stream into `into`, so a test can see what arrived before an error."""
    async for chunk in adapter.stream(chat(), "m"):
        into.append(chunk)


async def call(adapter: OpenAIChatAdapter, *, streaming: bool) -> None:
    if streaming:
        await collect(adapter.stream(chat(), "m"))
    else:
        await adapter.complete(chat(), "m")


# --------------------------------------------------------------------------------------
# Fixtures are the documented shapes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [TEXT_COMPLETION, TOOL_COMPLETION, JSON_COMPLETION])
def test_completion_fixtures_match_sdk_types(body: dict[str, Any]) -> None:
    _assert_no_extras(ChatCompletion.model_validate(body))


@pytest.mark.parametrize("chunk", TEXT_CHUNKS + TOOL_CHUNKS)
def test_chunk_fixtures_match_sdk_types(chunk: dict[str, Any]) -> None:
    _assert_no_extras(ChatCompletionChunk.model_validate(chunk))


@pytest.mark.parametrize("body", list(ERROR_BODIES.values()))
def test_error_fixtures_match_sdk_types(body: dict[str, Any]) -> None:
    assert set(body) == {"error"}
    _assert_no_extras(openai.types.ErrorObject.model_validate(body["error"]))


# --------------------------------------------------------------------------------------
# Outgoing requests
# --------------------------------------------------------------------------------------


async def test_request_line_headers_and_timeout(make: Callable[..., OpenAIChatAdapter]) -> None:
    recorder = Recorder(httpx.Response(200, json=TEXT_COMPLETION))
    adapter = make(recorder, extra_headers={"OpenAI-Organization": "org-abc"})

    await adapter.complete(chat(), "gpt-4.1")

    request = recorder.requests[0]
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["openai-organization"] == "org-abc"
    # connect fails fast on its own limit (DeploymentSettings.connect_timeout_s)
    assert request.extensions["timeout"] == {
        **dict.fromkeys(("read", "write", "pool"), TIMEOUT_S),
        "connect": 10.0,
    }


@pytest.mark.parametrize("streaming", [False, True])
async def test_local_server_without_key_gets_no_authorization(
    make: Callable[..., OpenAIChatAdapter], streaming: bool
) -> None:
    reply = (
        sse_response(sse(*TEXT_CHUNKS)) if streaming else httpx.Response(200, json=TEXT_COMPLETION)
    )
    recorder = Recorder(reply)
    adapter = make(recorder, api_key=None, base_url="http://127.0.0.1:11434/v1/")

    if streaming:
        await collect(adapter.stream(chat(), "llama3.2"))
    else:
        await adapter.complete(chat(), "llama3.2")

    request = recorder.requests[0]
    assert str(request.url) == "http://127.0.0.1:11434/v1/chat/completions"
    assert "authorization" not in request.headers


async def test_body_replaces_model_drops_hints_and_nones_keeps_passthrough(
    make: Callable[..., OpenAIChatAdapter],
) -> None:
    recorder = Recorder(httpx.Response(200, json=TEXT_COMPLETION))
    request = chat(
        model="auto",
        temperature=0.2,
        max_completion_tokens=256,
        stream=True,
        stream_options={"include_usage": False},
        modelyard={"task": "chat", "max_cost_usd": "0.01"},
        seed=42,
        logit_bias={"50256": -100},
        reasoning_effort="low",
        ignored_when_null=None,
    )

    await make(recorder).complete(request, "gpt-4.1-2025-04-14")

    assert recorder.body == {
        "model": "gpt-4.1-2025-04-14",
        "messages": [{"role": "user", "content": "Hello!"}],
        "temperature": 0.2,
        "max_completion_tokens": 256,
        "seed": 42,
        "logit_bias": {"50256": -100},
        "reasoning_effort": "low",
    }


async def test_stream_body_always_asks_for_usage(make: Callable[..., OpenAIChatAdapter]) -> None:
    recorder = Recorder(sse_response(sse(*TEXT_CHUNKS)))
    request = chat(stream=True, stream_options={"include_usage": False})

    await collect(make(recorder).stream(request, "gpt-4o-mini"))

    body = recorder.body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == "gpt-4o-mini"
    assert "modelyard" not in body


def test_build_body_non_stream_omits_stream_fields_even_if_caller_set_them() -> None:
    body = build_body(chat(stream=True, stream_options={"include_usage": True}), "m", stream=False)
    assert "stream" not in body
    assert "stream_options" not in body


async def test_image_part_passes_through(make: Callable[..., OpenAIChatAdapter]) -> None:
    content = [
        {"type": "text", "text": "What is in this image?"},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/boardwalk.jpg", "detail": "high"},
        },
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    recorder = Recorder(httpx.Response(200, json=TEXT_COMPLETION))

    await make(recorder).complete(chat(messages=[{"role": "user", "content": content}]), "gpt-4o")

    assert recorder.body["messages"] == [{"role": "user", "content": content}]


async def test_json_schema_response_format_uses_schema_key(
    make: Callable[..., OpenAIChatAdapter],
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature_c": {"type": ["number", "null"]}},
        "required": ["city", "temperature_c"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": schema, "strict": True},
    }
    recorder = Recorder(httpx.Response(200, json=JSON_COMPLETION))

    completion = await make(recorder).complete(chat(response_format=response_format), "gpt-4o")

    assert recorder.body["response_format"] == response_format
    assert json.loads(completion.content or "") == {"city": "Boston", "temperature_c": 5}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": None},
            },
            "required": ["location"],
        },
    },
}


async def test_tools_round_trip(make: Callable[..., OpenAIChatAdapter]) -> None:
    wire_calls = TOOL_COMPLETION["choices"][0]["message"]["tool_calls"]
    recorder = Recorder(httpx.Response(200, json=TOOL_COMPLETION))
    adapter = make(recorder)

    first = await adapter.complete(
        chat(
            messages=[{"role": "user", "content": "What's the weather like in Boston today?"}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_current_weather"}},
            parallel_tool_calls=False,
        ),
        "gpt-4o-mini",
    )

    body = recorder.body
    # A JSON-schema `default: null` is meaningful and must survive None-dropping.
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_current_weather"}}
    assert body["parallel_tool_calls"] is False
    assert first.content is None
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == (ToolCall.model_validate(wire_calls[0]),)
    assert first.usage == Usage(input_tokens=82, output_tokens=17, cached_input_tokens=0)

    # The answer goes back as an assistant message plus the tool's result.
    follow_up = chat(
        messages=[
            {"role": "user", "content": "What's the weather like in Boston today?"},
            Message(role="assistant", tool_calls=list(first.tool_calls)),
            {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temp_f": 41}'},
        ],
        tools=[WEATHER_TOOL],
    )
    messages = build_body(follow_up, "gpt-4o-mini", stream=False)["messages"]
    assert messages[1] == {"role": "assistant", "tool_calls": wire_calls}
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": "call_abc123",
        "content": '{"temp_f": 41}',
    }


# --------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------


async def test_plain_text_completion(make: Callable[..., OpenAIChatAdapter]) -> None:
    completion = await make(Recorder(httpx.Response(200, json=TEXT_COMPLETION))).complete(
        chat(), "gpt-4.1"
    )

    assert completion.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert completion.model == "gpt-4.1-2025-04-14"
    assert completion.content == "Hello! How can I assist you today?"
    assert completion.tool_calls == ()
    assert completion.finish_reason == "stop"
    assert completion.usage == Usage(input_tokens=2006, output_tokens=300, cached_input_tokens=1920)


def test_missing_usage_is_zero() -> None:
    body = {k: v for k, v in TEXT_COMPLETION.items() if k != "usage"}
    assert parse_completion(body).usage == Usage()


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (None, Usage()),
        ({"prompt_tokens": 5, "completion_tokens": None}, Usage(5, 0, 0)),
        ({"prompt_tokens": 9, "completion_tokens": 2, "prompt_tokens_details": None}, Usage(9, 2)),
        (
            {"prompt_tokens": 9, "completion_tokens": 2, "prompt_cache_hit_tokens": 4},
            Usage(9, 2, 4),
        ),
    ],
)
def test_parse_usage_tolerates_compatible_servers(usage: Any, expected: Usage) -> None:
    assert parse_usage(usage) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "tool_calls"),
        (None, "stop"),
        ("eos", "stop"),
    ],
)
def test_map_finish_reason(raw: Any, expected: str) -> None:
    assert map_finish_reason(raw) == expected


def test_legacy_function_call_becomes_a_tool_call() -> None:
    body = json.loads(json.dumps(TEXT_COMPLETION))
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    body["choices"][0]["finish_reason"] = "function_call"

    completion = parse_completion(body)

    assert completion.finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in completion.tool_calls] == [
        ("get_weather", '{"city":"Oslo"}')
    ]


def test_tool_calls_with_stop_finish_reason_are_reported_as_tool_calls() -> None:
    body = json.loads(json.dumps(TOOL_COMPLETION))
    body["choices"][0]["finish_reason"] = "stop"  # forced tool_choice, or a local server
    assert parse_completion(body).finish_reason == "tool_calls"


def test_refusal_is_kept_as_content() -> None:
    body = json.loads(json.dumps(TEXT_COMPLETION))
    body["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    assert parse_completion(body).content == "I can't help with that."


# --------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------


async def test_stream_text_with_usage(make: Callable[..., OpenAIChatAdapter]) -> None:
    chunks = await collect(make(Recorder(sse_response(sse(*TEXT_CHUNKS)))).stream(chat(), "m"))

    # The opening role-only delta carries nothing and is skipped.
    assert [c.content for c in chunks] == ["Hello", "!", " How can I help?", None, None]
    assert [c.finish_reason for c in chunks] == [None, None, None, "stop", None]
    assert chunks[-1].usage == Usage(input_tokens=19, output_tokens=10)
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_tool_calls_assemble_from_deltas(
    make: Callable[..., OpenAIChatAdapter],
) -> None:
    chunks = await collect(make(Recorder(sse_response(sse(*TOOL_CHUNKS)))).stream(chat(), "m"))

    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += delta.name or ""
            call["arguments"] += delta.arguments
    assert calls == {
        0: {
            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
            "name": "get_weather",
            "arguments": '{"location":"Paris, France"}',
        },
        1: {
            "id": "call_7cJz3kqf2wZ8Yx1nB5vR0aLm",
            "name": "get_time",
            "arguments": '{"tz":"Europe/Paris"}',
        },
    }
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    assert chunks[-1].usage == Usage(input_tokens=84, output_tokens=38)


async def test_stream_tool_calls_finishing_with_stop_report_tool_calls(
    make: Callable[..., OpenAIChatAdapter],
) -> None:
    events = [*TOOL_CHUNKS[:-2], _chunk([_delta({}, "stop")]), TOOL_CHUNKS[-1]]
    chunks = await collect(make(Recorder(sse_response(sse(*events)))).stream(chat(), "m"))
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_stream_ignores_comments_and_other_fields(
    make: Callable[..., OpenAIChatAdapter],
) -> None:
    body = (
        b": OPENROUTER PROCESSING\n\n"
        b"event: message\nid: 1\n"
        + sse(TEXT_CHUNKS[1], done=False)
        + b"\r\n"
        + sse(TEXT_CHUNKS[-1])
    )
    chunks = await collect(make(Recorder(sse_response(body))).stream(chat(), "m"))
    assert [c.content for c in chunks] == ["Hello", None]
    assert chunks[-1].usage == Usage(19, 10)


async def test_sse_joins_multiline_data() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["data: {", 'data: "a": 1}', "", ":comment", "data:[DONE]"]:
            yield line

    assert [d async for d in iter_sse_data(lines())] == ['{\n"a": 1}', "[DONE]"]


async def test_stream_cut_before_done(make: Callable[..., OpenAIChatAdapter]) -> None:
    adapter = make(Recorder(sse_response(sse(*TEXT_CHUNKS[:3], done=False))))
    received: list[Chunk] = []

    with pytest.raises(ProviderResponseError, match=r"stream ended before \[DONE\]") as info:
        await drain(adapter, received)

    assert [c.content for c in received] == ["Hello", "!"]
    assert info.value.retryable is True
    assert info.value.provider == "openai-main"


async def test_stream_event_that_is_not_json(make: Callable[..., OpenAIChatAdapter]) -> None:
    adapter = make(Recorder(sse_response(sse(TEXT_CHUNKS[1], "{not json"))))
    with pytest.raises(ProviderResponseError, match="not a JSON object"):
        await collect(adapter.stream(chat(), "m"))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ERROR_BODIES["server_error"]["error"], ProviderServerError),
        (ERROR_BODIES["rate_limit"]["error"], ProviderRateLimitError),
        ({"code": 502, "message": "Provider disconnected"}, ProviderServerError),
        ({"type": "overloaded_error", "message": "Overloaded"}, ProviderOverloadedError),
        (ERROR_BODIES["context_length"]["error"], UpstreamRequestError),
    ],
)
async def test_error_object_mid_stream(
    make: Callable[..., OpenAIChatAdapter], error: dict[str, Any], expected: type[ProviderError]
) -> None:
    adapter = make(Recorder(sse_response(sse(TEXT_CHUNKS[1], {"error": error}))))
    received: list[Chunk] = []

    with pytest.raises(expected) as info:
        await drain(adapter, received)

    assert [c.content for c in received] == ["Hello"]
    assert error["message"] in info.value.message


def test_openrouter_error_chunk_with_choices_raises() -> None:
    data = _chunk([_delta({"content": ""}, "error")])
    data["error"] = {"code": "server_error", "message": "Provider disconnected"}
    with pytest.raises(ProviderServerError, match="Provider disconnected"):
        parse_chunk(data)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"retry-after-ms": "1500"}, ProviderRateLimitError),
        (401, {}, ProviderAuthError),
        (400, {}, UpstreamRequestError),
        (500, {}, ProviderServerError),
    ],
)
async def test_stream_error_status_reads_body(
    make: Callable[..., OpenAIChatAdapter],
    status: int,
    headers: dict[str, str],
    expected: type[ProviderError],
) -> None:
    body = {429: "rate_limit", 401: "invalid_api_key", 400: "context_length", 500: "server_error"}
    error = ERROR_BODIES[body[status]]
    adapter = make(Recorder(httpx.Response(status, json=error, headers=headers)))

    with pytest.raises(expected) as info:
        await collect(adapter.stream(chat(), "m"))

    assert error["error"]["message"] in info.value.message
    assert info.value.upstream_status == status
    if isinstance(info.value, ProviderRateLimitError):
        assert info.value.retry_after == 1.5


class _BrokenStream(httpx.AsyncByteStream):
    def __init__(self, good: bytes, failure: Exception) -> None:
        self._good = good
        self._failure = failure

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._good
        raise self._failure


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ReadError("connection reset by peer"), ProviderConnectionError),
        (httpx.ReadTimeout("timed out"), ProviderTimeoutError),
    ],
)
async def test_stream_transport_failure_mid_stream(
    make: Callable[..., OpenAIChatAdapter], failure: Exception, expected: type[ProviderError]
) -> None:
    stream = _BrokenStream(sse(*TEXT_CHUNKS[:2], done=False), failure)
    adapter = make(Recorder(httpx.Response(200, stream=stream)))
    received: list[Chunk] = []

    with pytest.raises(expected):
        await drain(adapter, received)

    assert [c.content for c in received] == ["Hello"]


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body_name", "expected", "retryable"),
    [
        (400, "context_length", UpstreamRequestError, False),
        (401, "invalid_api_key", ProviderAuthError, True),
        (403, "invalid_api_key", ProviderAuthError, True),
        (404, "model_not_found", UpstreamRequestError, False),
        (500, "server_error", ProviderServerError, True),
        (503, "overloaded", ProviderServerError, True),
        (529, "overloaded", ProviderOverloadedError, True),
    ],
)
async def test_error_status_maps_to_error_class(
    make: Callable[..., OpenAIChatAdapter],
    status: int,
    body_name: str,
    expected: type[ProviderError],
    retryable: bool,
) -> None:
    body = ERROR_BODIES[body_name]
    adapter = make(Recorder(httpx.Response(status, json=body)))

    with pytest.raises(ProviderError) as info:
        await adapter.complete(chat(), "gpt-4o")

    exc = info.value
    assert type(exc) is expected
    assert exc.retryable is retryable
    assert exc.upstream_status == status
    assert exc.provider == "openai-main"
    assert body["error"]["message"] in exc.message


@pytest.mark.parametrize("status", [400, 404])
async def test_upstream_request_error_keeps_status_and_message(
    make: Callable[..., OpenAIChatAdapter], status: int
) -> None:
    body = ERROR_BODIES["context_length" if status == 400 else "model_not_found"]
    adapter = make(Recorder(httpx.Response(status, json=body)))

    with pytest.raises(UpstreamRequestError) as info:
        await adapter.complete(chat(), "gpt-4o")

    assert info.value.http_status == status
    assert info.value.message == body["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"retry-after-ms": "1500"}, 1.5), ({"retry-after": "3"}, 3.0), ({}, None)],
)
async def test_rate_limit_carries_retry_after(
    make: Callable[..., OpenAIChatAdapter], headers: dict[str, str], retry_after: float | None
) -> None:
    adapter = make(Recorder(httpx.Response(429, json=ERROR_BODIES["rate_limit"], headers=headers)))

    with pytest.raises(ProviderRateLimitError) as info:
        await adapter.complete(chat(), "gpt-4o")

    assert info.value.retry_after == retry_after
    assert info.value.retryable is True


async def test_malformed_json_body(make: Callable[..., OpenAIChatAdapter]) -> None:
    html = "<html><body>" + "Bad gateway " * 200 + "</body></html>"
    adapter = make(Recorder(httpx.Response(200, text=html)))

    with pytest.raises(ProviderResponseError, match="not JSON") as info:
        await adapter.complete(chat(), "gpt-4o")

    assert info.value.retryable is True
    assert "<html><body>Bad gateway" in info.value.message
    assert len(info.value.message) < 300


async def test_body_without_choices(make: Callable[..., OpenAIChatAdapter]) -> None:
    adapter = make(Recorder(httpx.Response(200, json={"id": "x", "object": "chat.completion"})))
    with pytest.raises(ProviderResponseError, match="no choices"):
        await adapter.complete(chat(), "gpt-4o")


async def test_error_object_in_a_200_body(make: Callable[..., OpenAIChatAdapter]) -> None:
    adapter = make(Recorder(httpx.Response(200, json=ERROR_BODIES["server_error"])))
    with pytest.raises(ProviderServerError, match="Sorry about that"):
        await adapter.complete(chat(), "gpt-4o")


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), ProviderConnectionError),
        (httpx.ReadTimeout("The read operation timed out"), ProviderTimeoutError),
        (httpx.ConnectTimeout("timed out"), ProviderTimeoutError),
    ],
)
async def test_transport_failures(
    make: Callable[..., OpenAIChatAdapter],
    failure: Exception,
    expected: type[ProviderError],
    streaming: bool,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    adapter = make(handler)
    with pytest.raises(expected) as info:
        await call(adapter, streaming=streaming)

    assert info.value.retryable is True
    assert info.value.provider == "openai-main"
    assert info.value.__cause__ is failure


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            json.dumps(ERROR_BODIES["model_not_found"]),
            ERROR_BODIES["model_not_found"]["error"]["message"],
        ),
        (
            '{"error": "model \'llama9\' not found, try pulling it first"}',
            "model 'llama9' not found, try pulling it first",
        ),
        ('{"detail": "Not authenticated"}', "Not authenticated"),
        (
            '{"object": "error", "message": "The model `x` does not exist.", "code": 404}',
            "The model `x` does not exist.",
        ),
        (b"Internal Server Error", "Internal Server Error"),
        (b"", "empty response body"),
    ],
)
def test_error_message_shapes(body: str | bytes, expected: str) -> None:
    assert error_message(body) == expected


def test_error_message_quotes_structured_detail_briefly() -> None:
    detail = [{"loc": ["body", "messages"], "msg": "field required", "type": "missing"}] * 20
    message = error_message(json.dumps({"detail": detail}))
    assert message.startswith('[{"loc": ["body", "messages"], "msg": "field required"')
    assert len(message) <= 201


def test_error_message_truncates_plain_text() -> None:
    assert len(error_message("x" * 5000)) <= 201


# --------------------------------------------------------------------------------------
# The key never leaks
# --------------------------------------------------------------------------------------


def _echo(status: int, text: str) -> Handler:
    return lambda request: httpx.Response(status, text=text)


def _raise(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


_ECHOED = json.dumps(
    {"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error"}}
)
LEAK_SCENARIOS: dict[str, tuple[Handler, bool]] = {
    "401 echoing the key": (_echo(401, _ECHOED), False),
    "400 echoing the key": (_echo(400, _ECHOED), False),
    "429": (lambda r: httpx.Response(429, json=ERROR_BODIES["rate_limit"]), False),
    "500 plain text with key": (_echo(500, f"upstream saw Bearer {KEY}"), False),
    "non-JSON 200 with key": (_echo(200, f"<html>{KEY}</html>"), False),
    "no choices with key": (_echo(200, json.dumps({"echo": KEY})), False),
    "stream 401 echoing the key": (_echo(401, _ECHOED), True),
    "stream error event with key": (_echo(200, sse({"error": {"message": KEY}}).decode()), True),
    "stream cut": (_echo(200, sse(*TEXT_CHUNKS[:2], done=False).decode()), True),
    "connect error": (_raise(httpx.ConnectError("[Errno 111] Connection refused")), False),
    "read timeout": (_raise(httpx.ReadTimeout("timed out")), True),
}


def _messages(exc: BaseException | None) -> Iterator[str]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield str(exc)
        yield repr(exc)
        yield from (str(arg) for arg in exc.args)
        exc = exc.__cause__ if isinstance(exc, ProviderError) else None


@pytest.mark.parametrize("scenario", list(LEAK_SCENARIOS))
async def test_api_key_never_in_error(
    make: Callable[..., OpenAIChatAdapter], scenario: str
) -> None:
    handler, streaming = LEAK_SCENARIOS[scenario]
    adapter = make(handler)

    with pytest.raises(ProviderError) as info:
        await call(adapter, streaming=streaming)

    exc = info.value
    assert exc.message, "the error must still say something"
    for text in [exc.message, *_messages(exc)]:
        assert KEY not in text


async def test_adapter_repr_hides_key_and_satisfies_protocol(
    make: Callable[..., OpenAIChatAdapter],
) -> None:
    adapter = make(Recorder(httpx.Response(200, json=TEXT_COMPLETION)))
    assert KEY not in repr(adapter)
    assert "openai-main" in repr(adapter)
    assert isinstance(adapter, ChatProvider)
