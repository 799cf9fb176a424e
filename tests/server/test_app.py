"""The HTTP app through httpx.ASGITransport: OpenAI wire format, headers, errors."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.types import ChatRequest, Completion

HELLO = [{"role": "user", "content": "hello"}]


async def chat(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("messages", HELLO)
    return await client.post("/v1/chat/completions", json=body)


def sse_events(text: str) -> list[Any]:
    events = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


async def test_non_stream_completion_in_openai_shape_with_routing_headers(
    client: httpx.AsyncClient, ledger: InMemoryLedger
) -> None:
    response = await chat(client, model="cheap")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "small"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "ok from small",
        "refusal": None,
    }
    assert body["usage"]["prompt_tokens"] == 100
    assert response.headers["x-modelyard-model"] == "small"
    assert Decimal(response.headers["x-modelyard-cost-usd"]) == Decimal("0.000018")
    (record,) = await ledger.records()
    assert response.headers["x-modelyard-decision"] == record.decision_id
    assert response.headers["x-request-id"] == record.request_id


async def test_caller_request_id_is_kept(client: httpx.AsyncClient, ledger: InMemoryLedger) -> None:
    response = await client.post(
        "/v1/chat/completions", json={"messages": HELLO}, headers={"x-request-id": "req-abc"}
    )
    assert response.status_code == 200
    assert [r.request_id for r in await ledger.records()] == ["req-abc"]


async def test_stream_is_sse_with_usage_and_done(client: httpx.AsyncClient) -> None:
    response = await chat(
        client, model="cheap", stream=True, stream_options={"include_usage": True}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-modelyard-model"] == "small"
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "ok from small"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 20
    assert Decimal(chunks[-1]["modelyard"]["cost_usd"]) == Decimal("0.000018")


async def test_stream_without_include_usage_sends_no_usage_chunk(client: httpx.AsyncClient) -> None:
    response = await chat(client, model="cheap", stream=True)
    chunks = sse_events(response.text)[:-1]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


async def test_tool_calls_are_rendered(
    client: httpx.AsyncClient, providers: dict[str, FunctionProvider]
) -> None:
    from modelyard.types import FunctionCall, ToolCall

    async def tool_answer(request: ChatRequest, upstream: str) -> Completion:
        call = ToolCall(id="call_1", function=FunctionCall(name="lookup", arguments='{"q":"x"}'))
        return Completion(
            id="c", model=upstream, content=None, tool_calls=(call,), finish_reason="tool_calls"
        )

    providers["cheapco"].complete_fn = tool_answer
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    response = await chat(client, model="vision-mid", tools=tools, tool_choice="auto")
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q":"x"}'},
        }
    ]


@pytest.mark.parametrize(
    ("content", "status", "fragment"),
    [
        (b"{not json", 400, "request body is not valid JSON"),
        (b"", 400, "request body is missing"),
        (b'{"messages": []}', 400, "messages must contain at least one message"),
        (b'{"messages": "hello"}', 400, "messages: Input should be a valid list"),
        (b'{"model": "auto"}', 400, "messages: Field required"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', 400, "messages.0.role"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "lots"}',
            400,
            "max_tokens",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 7}', 400, "temperature"),
        (
            b'{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "unknown model 'gpt-9'",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}],'
            b' "modelyard": {"data_class": "secret"}}',
            400,
            "modelyard.data_class",
        ),
    ],
)
async def test_bad_input_gets_openai_error_json(
    client: httpx.AsyncClient, content: bytes, status: int, fragment: str
) -> None:
    response = await client.post(
        "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["type"] == "invalid_request_error"


async def test_oversized_prompt_is_400_context_length(client: httpx.AsyncClient) -> None:
    response = await chat(client, messages=[{"role": "user", "content": "word " * 250_000}])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


async def test_capability_nobody_meets_is_400(client: httpx.AsyncClient) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    response = await chat(client, messages=[{"role": "user", "content": [audio]}])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_qualified_model"
    assert "supports audio" in response.json()["error"]["message"]


async def test_bad_hint_header_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"messages": HELLO},
        headers={"x-modelyard-max-cost-usd": "lots"},
    )
    assert response.status_code == 400
    assert "x-modelyard-max-cost-usd" in response.json()["error"]["message"]


async def test_header_hints_route_confidential_data_privately(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"messages": HELLO},
        headers={"x-modelyard-data-class": "confidential"},
    )
    assert response.status_code == 200
    assert response.headers["x-modelyard-model"] == "local-llm"


async def test_route_is_a_dry_run_with_reasons(
    client: httpx.AsyncClient, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    response = await client.post(
        "/v1/route",
        json={"messages": HELLO, "tools": [{"type": "function", "function": {"name": "f"}}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] == "routed"
    decision = body["decision"]
    assert decision["candidates"][0]["model"] in {"vision-mid", "frontier"}
    assert {"model": "small", "reason": "lacks tools"} in decision["rejected"]
    assert all(not p.calls for p in providers.values())
    assert await ledger.records() == []


async def test_route_reports_the_error_a_chat_call_would_get(client: httpx.AsyncClient) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    body = (
        await client.post("/v1/route", json={"messages": [{"role": "user", "content": [audio]}]})
    ).json()
    assert body["outcome"] == "error"
    assert body["status"] == 400
    assert "supports audio" in body["error"]["message"]


async def test_models_lists_cards_with_prices_and_policies(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    small = by_id["small"]["modelyard"]
    assert small["prices_per_mtok"] == {
        "input": "0.10",
        "output": "0.40",
        "cached_input": "0.10",
        "source": "card",
    }
    assert small["available"] is True
    assert {"auto", "cheapest", "best", "pinned", "cheap"} <= set(by_id)


async def test_health_reports_providers(client: httpx.AsyncClient) -> None:
    body = (await client.get("/health")).json()
    assert body["status"] == "ok"
    assert body["providers"]["cheapco"] == {"enabled": True, "reason": None}
