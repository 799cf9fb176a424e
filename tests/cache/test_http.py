"""The cache through the HTTP gateway, driven by the official openai SDK: the
`x-modelyard-cache` header, the `Cache-Control` opt-out, and a hit replayed to the
SDK's streaming client as a normal chat-completion-chunk stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx2
import openai
import pytest

from modelyard.engine import Engine
from modelyard.ledger import InMemoryLedger
from modelyard.server.app import create_app

USER: list[dict[str, str]] = [{"role": "user", "content": "what is 2+2?"}]


@pytest.fixture
async def oai(engine: Engine) -> AsyncIterator[openai.AsyncOpenAI]:
    transport = httpx2.ASGITransport(app=create_app(engine))
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key="unused", http_client=http, max_retries=0
        )


async def test_miss_then_hit_with_headers_and_zero_cost(
    oai: openai.AsyncOpenAI, ledger: InMemoryLedger
) -> None:
    first = await oai.chat.completions.with_raw_response.create(
        model="cheap", messages=USER, temperature=0
    )
    second = await oai.chat.completions.with_raw_response.create(
        model="cheap", messages=USER, temperature=0
    )
    assert first.headers["x-modelyard-cache"] == "miss"
    assert second.headers["x-modelyard-cache"] == "hit"
    assert second.headers["x-modelyard-model"] == "small"
    assert Decimal(second.headers["x-modelyard-cost-usd"]) == 0
    assert Decimal(first.headers["x-modelyard-cost-usd"]) > 0
    a, b = first.parse(), second.parse()
    assert b.choices[0].message.content == a.choices[0].message.content
    assert b.model == "small"
    assert b.usage is not None
    assert a.usage is not None
    assert b.usage.completion_tokens == a.usage.completion_tokens
    records = await ledger.records(request_id=second.headers["x-request-id"])
    assert [(r.status, r.cost_usd, r.model_id) for r in records] == [("cached", 0, "small")]


async def test_cache_control_no_cache_bypasses_and_sampled_requests_say_why(
    oai: openai.AsyncOpenAI,
) -> None:
    await oai.chat.completions.create(model="cheap", messages=USER, temperature=0)
    fresh = await oai.chat.completions.with_raw_response.create(
        model="cheap",
        messages=USER,
        temperature=0,
        extra_headers={"cache-control": "no-cache"},
    )
    assert fresh.headers["x-modelyard-cache"] == "bypass"
    assert fresh.headers["x-modelyard-cache-reason"] == "no-cache requested"
    hinted = await oai.chat.completions.with_raw_response.create(
        model="cheap",
        messages=USER,
        temperature=0,
        extra_body={"modelyard": {"cache": "no-store"}},
    )
    assert hinted.headers["x-modelyard-cache"] == "bypass"
    sampled = await oai.chat.completions.with_raw_response.create(
        model="cheap", messages=USER, temperature=0.9
    )
    assert sampled.headers["x-modelyard-cache"] == "bypass"
    assert "cache.sampled is off" in sampled.headers["x-modelyard-cache-reason"]


async def test_stream_replays_a_cached_answer_to_the_sdk_streaming_client(
    oai: openai.AsyncOpenAI, ledger: InMemoryLedger
) -> None:
    # Bought by a plain call, replayed to a streaming one...
    plain = await oai.chat.completions.create(model="cheap", messages=USER, temperature=0)
    raw = await oai.chat.completions.with_raw_response.create(
        model="cheap",
        messages=USER,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-modelyard-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = [chunk async for chunk in raw.parse()]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 20
    assert Decimal(usage_chunk.model_extra["modelyard"]["cost_usd"]) == 0

    # ...and bought by a stream, replayed to another stream.
    other = [{"role": "user", "content": "and 3+3?"}]
    live = await oai.chat.completions.create(
        model="cheap", messages=other, temperature=0, stream=True
    )
    first_text = "".join([c.choices[0].delta.content or "" async for c in live if c.choices])
    replay = await oai.chat.completions.with_raw_response.create(
        model="cheap", messages=other, temperature=0, stream=True
    )
    assert replay.headers["x-modelyard-cache"] == "hit"
    again = "".join([c.choices[0].delta.content or "" async for c in replay.parse() if c.choices])
    assert again == first_text == "ok from small"
    records = await ledger.records(request_id=replay.headers["x-request-id"])
    assert [(r.status, r.streamed) for r in records] == [("cached", True)]
