"""The Gemini adapter over `httpx.MockTransport`, answering with recorded exchanges."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from modelyard.catalog.prices import library_prices
from modelyard.errors import (
    ContentFilteredError,
    ProviderAuthError,
    ProviderError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderServerError,
    UpstreamRequestError,
)
from modelyard.providers.base import DeploymentSettings
from modelyard.providers.gemini import GeminiAdapter
from modelyard.types import ChatRequest, Chunk, Usage
from tests.providers import gemini_fixtures as fx

KEY = "AIzaSy-test-0123456789abcdefghijklmnop"
BASE = "https://generativelanguage.googleapis.com/v1beta"
Handler = Callable[[httpx.Request], httpx.Response]


def adapter(handler: Handler) -> GeminiAdapter:
    settings = DeploymentSettings(name="google", base_url=BASE, api_key=KEY)
    return GeminiAdapter(settings, httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def answering(body: Any, status: int = 200, seen: list[httpx.Request] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(body, bytes):
            headers = {"content-type": "text/event-stream"}
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body)

    return handle


def hello(**extra: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "Capital of France?"}], **extra)


async def collect(provider: GeminiAdapter, request: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request, "gemini-2.5-flash")]


async def test_request_goes_to_generate_content_with_the_key_in_a_header() -> None:
    seen: list[httpx.Request] = []
    await adapter(answering(fx.TEXT_ANSWER, seen=seen)).complete(hello(), "gemini-2.5-flash")
    request = seen[0]
    assert str(request.url) == f"{BASE}/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == KEY
    assert KEY not in str(request.url)
    body = json.loads(request.content)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Capital of France?"}]}]
    assert body["generationConfig"] == {"candidateCount": 1}


async def test_text_answer_skips_thoughts_and_bills_thinking_as_output() -> None:
    completion = await adapter(answering(fx.TEXT_ANSWER)).complete(hello(), "gemini-2.5-flash")
    assert completion.content == "The capital of France is Paris."
    assert completion.finish_reason == "stop"
    assert completion.id == "mJ8uaLLxN6W1nvgPmu2g0Qk"
    assert completion.model == "gemini-2.5-flash"
    assert completion.usage == Usage(input_tokens=12, output_tokens=108, cached_input_tokens=4)
    prices = library_prices("gemini-2.5-flash", "google")
    assert prices is not None
    # 8 prompt tokens at $0.30/M, 4 cached at $0.03/M, 8 answer + 100 thinking at $2.50/M.
    expected = (8 * Decimal("0.3") + 4 * Decimal("0.03") + 108 * Decimal("2.5")) / 1_000_000
    assert prices.cost(completion.usage) == expected.quantize(Decimal("1e-9"))


async def test_function_calls_get_ids_and_finish_as_tool_calls() -> None:
    completion = await adapter(answering(fx.FUNCTION_CALLS)).complete(hello(), "m")
    assert completion.finish_reason == "tool_calls"
    assert completion.content is None
    calls = completion.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert [c.id for c in calls] == ["call_resp42_0", "call_resp42_1"]


async def test_gemini_own_call_ids_are_kept() -> None:
    body = json.loads(json.dumps(fx.FUNCTION_CALLS))
    body["candidates"][0]["content"]["parts"][0]["functionCall"]["id"] = "gem-id-7"
    completion = await adapter(answering(body)).complete(hello(), "m")
    assert completion.tool_calls[0].id == "gem-id-7"


async def test_blocked_prompt_is_a_content_filter_error() -> None:
    with pytest.raises(ContentFilteredError) as caught:
        await adapter(answering(fx.BLOCKED_PROMPT)).complete(hello(), "m")
    error = caught.value
    assert error.http_status == 400
    assert error.code == "content_filter"
    assert not error.retryable
    assert "blockReason SAFETY" in error.message
    assert "HARM_CATEGORY_DANGEROUS_CONTENT" in error.message
    assert "SEXUALLY" not in error.message  # rated NEGLIGIBLE: not the cause


async def test_safety_finish_without_content_is_a_content_filter_error() -> None:
    with pytest.raises(ContentFilteredError, match=r"finishReason SAFETY.*HARASSMENT"):
        await adapter(answering(fx.SAFETY_NO_CONTENT)).complete(hello(), "m")


@pytest.mark.parametrize(
    "reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"]
)
async def test_filter_finish_after_text_keeps_the_text_as_content_filter(reason: str) -> None:
    completion = await adapter(answering(fx.candidate_with(reason, "partial"))).complete(
        hello(), "m"
    )
    assert completion.content == "partial"
    assert completion.finish_reason == "content_filter"


@pytest.mark.parametrize(
    ("reason", "finish"), [("STOP", "stop"), ("MAX_TOKENS", "length"), ("OTHER", "stop")]
)
async def test_normal_finish_reasons_map_to_openai(reason: str, finish: str) -> None:
    completion = await adapter(answering(fx.candidate_with(reason, "text"))).complete(hello(), "m")
    assert completion.finish_reason == finish


async def test_malformed_function_call_is_a_retryable_upstream_fault() -> None:
    with pytest.raises(ProviderResponseError, match="MALFORMED_FUNCTION_CALL") as caught:
        await adapter(answering(fx.candidate_with("MALFORMED_FUNCTION_CALL"))).complete(
            hello(), "m"
        )
    assert caught.value.retryable


async def test_other_finish_without_text_is_a_retryable_fault() -> None:
    with pytest.raises(ProviderResponseError):
        await adapter(answering(fx.candidate_with("OTHER"))).complete(hello(), "m")


async def test_empty_candidate_list_is_a_clear_retryable_error() -> None:
    with pytest.raises(ProviderResponseError, match="no candidates") as caught:
        await adapter(answering(fx.EMPTY_CANDIDATES)).complete(hello(), "m")
    assert caught.value.retryable
    assert caught.value.http_status == 502


@pytest.mark.parametrize(
    "content",
    [
        b'{"candidates": [{"content": {"parts": [{"text": "cut',
        b"<html>502 Bad Gateway</html>",
        b'{"candidates": [{"content": {"parts": "not-a-list"}}]}',
        b'{"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}',
        b'{"candidates": [{"content": {"parts": [{"text": "x"}]}}], '
        b'"usageMetadata": {"promptTokenCount": "many"}}',
    ],
)
async def test_malformed_bodies_are_response_errors(content: bytes) -> None:
    def handle(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content)

    with pytest.raises(ProviderResponseError):
        await adapter(handle).complete(hello(), "m")


# --- errors ---------------------------------------------------------------------------


async def test_rate_limit_reads_the_retry_delay_from_retry_info() -> None:
    with pytest.raises(ProviderRateLimitError) as caught:
        await adapter(answering(fx.RATE_LIMITED, 429)).complete(hello(), "m")
    assert caught.value.retry_after == 37.0
    assert caught.value.retryable
    assert "RESOURCE_EXHAUSTED" in caught.value.message


@pytest.mark.parametrize(
    ("body", "status", "kind", "retryable"),
    [
        (fx.OVERLOADED, 503, ProviderOverloadedError, True),
        (fx.INTERNAL, 500, ProviderServerError, True),
        (fx.INVALID_ARGUMENT, 400, UpstreamRequestError, False),
        (fx.BAD_KEY, 400, ProviderAuthError, True),
    ],
)
async def test_error_bodies_map_onto_the_error_tree(
    body: dict[str, Any], status: int, kind: type[ProviderError], retryable: bool
) -> None:
    with pytest.raises(kind) as caught:
        await adapter(answering(body, status)).complete(hello(), "m")
    assert type(caught.value) is kind
    assert caught.value.retryable is retryable
    assert body["error"]["message"].strip()[:30] in caught.value.message


async def test_caller_error_keeps_the_upstream_status() -> None:
    with pytest.raises(UpstreamRequestError) as caught:
        await adapter(answering(fx.INVALID_ARGUMENT, 400)).complete(hello(), "m")
    assert caught.value.http_status == 400


async def test_a_key_echoed_in_an_error_is_redacted() -> None:
    body = {"error": {"code": 400, "message": f"bad key {KEY}", "status": "INVALID_ARGUMENT"}}
    with pytest.raises(UpstreamRequestError) as caught:
        await adapter(answering(body, 400)).complete(hello(), "m")
    assert KEY not in caught.value.message
    assert "[redacted]" in caught.value.message


# --- streaming ------------------------------------------------------------------------


async def test_stream_goes_to_stream_generate_content_with_alt_sse() -> None:
    seen: list[httpx.Request] = []
    await collect(adapter(answering(fx.TEXT_STREAM, seen=seen)), hello())
    assert str(seen[0].url) == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert seen[0].headers["x-goog-api-key"] == KEY


async def test_stream_text_then_finish_with_cumulative_usage() -> None:
    chunks = await collect(adapter(answering(fx.TEXT_STREAM)), hello())
    assert "".join(c.content or "" for c in chunks) == "The capital of France is Paris."
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == Usage(input_tokens=12, output_tokens=37)
    assert all(c.finish_reason is None for c in chunks[:-1])


async def test_streamed_function_call_arrives_whole() -> None:
    chunks = await collect(adapter(answering(fx.TOOL_STREAM)), hello())
    deltas = [d for c in chunks for d in c.tool_calls]
    assert len(deltas) == 1
    assert (deltas[0].index, deltas[0].id, deltas[0].name) == (0, "call_stream2_0", "get_weather")
    assert json.loads(deltas[0].arguments) == {"city": "Paris"}
    assert chunks[-1].finish_reason == "tool_calls"


async def test_safety_stop_mid_stream_reports_usage_then_raises() -> None:
    got: list[Chunk] = []
    with pytest.raises(ContentFilteredError, match=r"after partial output.*SAFETY"):
        async for chunk in adapter(answering(fx.SAFETY_MID_STREAM)).stream(hello(), "m"):
            got.append(chunk)
    assert "".join(c.content or "" for c in got) == "Here is how you would "
    # The last chunk before the error carries Gemini's count, so the attempt is billed for it.
    assert got[-1].usage == Usage(input_tokens=12, output_tokens=9)
    assert got[-1].finish_reason is None
    assert not got[-1].has_content


async def test_safety_stop_before_any_text_raises_without_chunks() -> None:
    stream = fx.sse(fx.SAFETY_NO_CONTENT)
    got: list[Chunk] = []
    with pytest.raises(ContentFilteredError):
        async for chunk in adapter(answering(stream)).stream(hello(), "m"):
            got.append(chunk)
    assert got == []


async def test_blocked_prompt_in_a_stream_is_a_content_filter_error() -> None:
    with pytest.raises(ContentFilteredError, match="blockReason"):
        await collect(adapter(answering(fx.sse(fx.BLOCKED_PROMPT))), hello())


async def test_stream_cut_before_its_finish_reason_is_a_response_error() -> None:
    with pytest.raises(ProviderResponseError, match="before a finishReason"):
        await collect(adapter(answering(fx.CUT_STREAM)), hello())


async def test_malformed_stream_event_is_a_response_error() -> None:
    with pytest.raises(ProviderResponseError, match="not a JSON object"):
        await collect(adapter(answering(b'data: {"candidates": [\r\n\r\n')), hello())


async def test_error_event_mid_stream_maps_by_its_code() -> None:
    stream = fx.TEXT_STREAM.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + fx.sse(fx.OVERLOADED)
    with pytest.raises(ProviderOverloadedError):
        await collect(adapter(answering(stream)), hello())


async def test_stream_status_errors_map_like_whole_ones() -> None:
    with pytest.raises(ProviderRateLimitError) as caught:
        await collect(adapter(answering([fx.RATE_LIMITED], 429)), hello())
    assert caught.value.retry_after == 37.0
