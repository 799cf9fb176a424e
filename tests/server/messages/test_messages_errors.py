"""Bad input and failures on `/v1/messages`: each a clear error in Anthropic's shape
(`{"type": "error", "error": {"type", "message"}}`) with its documented status and a
`request-id` header, never a 500; mid-stream failures as an `event: error`."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from modelyard.testing.upstream import ANTHROPIC_PATH, OPENAI_PATH
from tests.server.messages.conftest import GPT, Gateway
from tests.server.messages.test_messages_sdk import WEATHER, parse_sse

USER = {"role": "user", "content": "Hello"}
ASKED = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
}


def result(tool_use_id: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": "18C"}],
    }


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt", "max_tokens": 50, "messages": [USER], **fields}


def assert_anthropic_error(response: Any, status: int, kind: str, *needles: str) -> str:
    """The response is Anthropic's error shape with `status` and `kind`; returns the message."""
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["type"] == "error"
    assert set(payload["error"]) == {"type", "message"}
    assert payload["error"]["type"] == kind
    assert payload["request_id"] == response.headers["request-id"]
    message: str = payload["error"]["message"]
    for needle in needles:
        assert needle in message, message
    return message


BAD_BODIES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("missing max_tokens", {"model": "gpt", "messages": [USER]}, ("max_tokens: Field required",)),
    ("max_tokens 0", body(max_tokens=0), ("max_tokens",)),
    ("empty messages", body(messages=[]), ("messages: at least one message is required",)),
    (
        "first message from the assistant",
        body(messages=[{"role": "assistant", "content": "Hi"}, USER]),
        ('first message must use the "user" role',),
    ),
    (
        "unknown block type",
        body(messages=[{"role": "user", "content": [{"type": "hologram", "data": "x"}]}]),
        ("messages.0.content.0", "unknown content block type 'hologram'"),
    ),
    (
        "a block without a type",
        body(messages=[{"role": "user", "content": [{"text": "hi"}]}]),
        ("messages.0.content.0", "needs a 'type'"),
    ),
    (
        "documented but unsupported block",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "document", "source": {"type": "text", "data": "x"}},
                    ],
                }
            ]
        ),
        ("content block type 'document' is not supported",),
    ),
    (
        "tool_result without its tool_use",
        body(messages=[USER, {"role": "assistant", "content": "Sure."}, result("toolu_9")]),
        ("messages.2", "unexpected `tool_use_id`", "toolu_9"),
    ),
    (
        "tool_result answering another id",
        body(messages=[USER, ASKED, result("toolu_2")]),
        ("toolu_1",),
    ),
    (
        "tool_use never answered",
        body(messages=[USER, ASKED, USER]),
        ("without `tool_result` blocks immediately after: toolu_1",),
    ),
    (
        "tool_result in the first user turn",
        body(messages=[result("toolu_1")]),
        ("unexpected `tool_use_id`",),
    ),
    (
        "an empty user turn",
        body(
            messages=[{"role": "user", "content": []}, {"role": "assistant", "content": "x"}, USER]
        ),
        ("messages.0", "non-empty content"),
    ),
    (
        "only an empty user message (found by the schema fuzz)",
        body(messages=[{"role": "user", "content": ""}]),
        ("messages.0", "non-empty content"),
    ),
    (
        "thinking in a user turn",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "thinking", "thinking": "x", "signature": "s"},
                    ],
                }
            ]
        ),
        ("thinking blocks may only appear in assistant turns",),
    ),
    ("unknown top-level field", body(frequency_penalty=1), ("frequency_penalty: Extra inputs",)),
    ("a platform-only field", body(container="c_1"), ("container: not supported by modelyard",)),
    ("temperature above 1", body(temperature=1.5), ("temperature",)),
    (
        "a server tool",
        body(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        ("server tool 'web_search_20250305'",),
    ),
    (
        "tool_choice naming no tool",
        body(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}),
        ("no tool named 'nope'",),
    ),
    (
        "an image file source",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                }
            ]
        ),
        ("messages.0.content.0.source",),
    ),
    (
        "an image of an unsupported type",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "AA"},
                        }
                    ],
                }
            ]
        ),
        ("media_type",),
    ),
    ("NUL in the text", body(messages=[{"role": "user", "content": "a\x00b"}]), ("NUL",)),
]


@pytest.mark.parametrize(
    ("payload", "needles"), [(b, n) for _, b, n in BAD_BODIES], ids=[c for c, _, _ in BAD_BODIES]
)
async def test_bad_bodies_are_clear_400s(
    gateway: Gateway, payload: dict[str, Any], needles: tuple[str, ...]
) -> None:
    response = await gateway.http.post("/v1/messages", json=payload)
    assert_anthropic_error(response, 400, "invalid_request_error", *needles)
    assert gateway.upstream.requests == []
    assert await gateway.ledger.records() == []


async def test_the_sdk_raises_its_bad_request_error(gateway: Gateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await gateway.sdk.messages.create(
            model="gpt",
            max_tokens=10,
            messages=[USER, {"role": "assistant", "content": "Sure."}, result("toolu_9")],
        )
    error = caught.value
    assert error.status_code == 400
    assert isinstance(error.body, dict)
    assert error.body["error"]["type"] == "invalid_request_error"
    assert error.request_id == error.response.headers["request-id"]


async def test_not_json_and_not_an_object(gateway: Gateway) -> None:
    for content in (b"{not json", b"[1, 2]", b"\xa2\xff", b""):
        response = await gateway.http.post(
            "/v1/messages", content=content, headers={"content-type": "application/json"}
        )
        assert_anthropic_error(response, 400, "invalid_request_error", "body")


async def test_unknown_model_is_not_found(gateway: Gateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await gateway.sdk.messages.create(model="claude-9", max_tokens=10, messages=[USER])
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "claude-9" in caught.value.body["error"]["message"]
    response = await gateway.http.post(
        "/v1/messages/count_tokens", json={"model": "claude-9", "messages": [USER]}
    )
    assert_anthropic_error(response, 404, "not_found_error", "claude-9")


async def test_a_requirement_no_model_meets(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/v1/messages", json=body(model="auto"), headers={"x-modelyard-max-cost-usd": "0.0000001"}
    )
    assert_anthropic_error(response, 400, "invalid_request_error")


async def test_too_large_body_and_bad_headers(gateway: Gateway) -> None:
    big = body(messages=[{"role": "user", "content": "x" * 300_000}])
    response = await gateway.http.post("/v1/messages", json=big)
    assert_anthropic_error(response, 413, "request_too_large", "too large")
    response = await gateway.http.post(
        "/v1/messages", json=body(), headers={"x-request-id": "has space"}
    )
    assert_anthropic_error(response, 400, "invalid_request_error", "x-request-id")
    # The OpenAI route keeps the OpenAI shape for the same refusal.
    response = await gateway.http.post(
        "/v1/chat/completions", json={"messages": [USER]}, headers={"x-request-id": "has space"}
    )
    assert response.json()["error"]["param"] == "x-request-id"


async def test_an_upstreams_own_400_is_passed_through(gateway: Gateway) -> None:
    gateway.upstream.script.push(
        ANTHROPIC_PATH,
        status=400,
        body={
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "prompt is too long"},
        },
    )
    response = await gateway.http.post("/v1/messages", json=body(model="claude"))
    assert_anthropic_error(response, 400, "invalid_request_error", "prompt is too long")
    assert len(await gateway.ledger.records()) == 1


async def test_one_models_upstream_failure_is_an_api_error(gateway: Gateway) -> None:
    for _ in range(3):
        gateway.upstream.script.push(OPENAI_PATH, status=500, body={"error": {"message": "boom"}})
    response = await gateway.http.post("/v1/messages", json=body(model=GPT))
    assert_anthropic_error(response, 500, "api_error", "boom")
    records = await gateway.ledger.records()
    assert [r.status for r in records] == ["error"] * len(records)
    assert len(records) == len(gateway.upstream.requests_to(OPENAI_PATH))


async def test_every_qualified_model_failing_is_overloaded_529(gateway: Gateway) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    for _ in range(3):
        gateway.upstream.script.push(ANTHROPIC_PATH, status=529, body=overloaded)
        gateway.upstream.script.push(OPENAI_PATH, status=503, body={"error": {"message": "busy"}})
    with pytest.raises(anthropic.OverloadedError) as caught:
        await gateway.sdk.messages.create(model="claude-first", max_tokens=10, messages=[USER])
    assert isinstance(caught.value.body, dict)
    assert "every qualified model failed" in caught.value.body["error"]["message"]
    records = await gateway.ledger.records()
    assert len(records) == len(gateway.upstream.requests) >= 2


async def test_tool_arguments_that_are_not_an_object_are_an_api_error(gateway: Gateway) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "[1]"},
    }
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
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
        },
    )
    response = await gateway.http.post("/v1/messages", json=body(tools=[WEATHER]))
    assert_anthropic_error(response, 500, "api_error", "not a JSON object")


async def test_our_own_bug_is_an_api_error_not_a_bare_500(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(gateway.engine, "complete", broken)
    response = await gateway.http.post("/v1/messages", json=body())
    message = assert_anthropic_error(response, 500, "api_error", "internal error")
    assert "bug" not in message


def _anthropic_sse(*events: dict[str, Any]) -> list[str]:
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events]


def _push_cut_stream(gateway: Gateway, text: str, error_type: str, message: str) -> None:
    """The Anthropic upstream starts a text answer, sends `text`, then an error event."""
    start = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
    text_block = {"type": "text", "text": ""}
    delta = {"type": "text_delta", "text": text}
    gateway.upstream.script.push(
        ANTHROPIC_PATH,
        chunks=_anthropic_sse(
            {"type": "message_start", "message": start},
            {"type": "content_block_start", "index": 0, "content_block": text_block},
            {"type": "content_block_delta", "index": 0, "delta": delta},
            {"type": "error", "error": {"type": error_type, "message": message}},
        ),
    )


async def test_a_failure_mid_stream_ends_with_an_error_event(gateway: Gateway) -> None:
    _push_cut_stream(gateway, "Part", "overloaded_error", "Overloaded")
    response = await gateway.http.post("/v1/messages", json=body(model="claude", stream=True))
    assert response.status_code == 200
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "Part"}
    name, error = events[-1]
    assert name == "error"
    assert error["error"]["type"] == "overloaded_error"
    assert "stream interrupted after partial output" in error["error"]["message"]
    (record,) = await gateway.ledger.records()
    assert record.status == "error"


async def test_the_sdk_raises_on_a_mid_stream_error_event(gateway: Gateway) -> None:
    _push_cut_stream(gateway, "Par", "api_error", "boom")
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with gateway.sdk.messages.stream(
            model="claude", max_tokens=10, messages=[USER]
        ) as stream:
            async for text in stream.text_stream:
                seen.append(text)
    assert seen == ["Par"]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "api_error"
