"""Streams and the cache: a completed stream is stored (a cut, failed or abandoned one
never is), and a hit replays as a stream whichever way its answer was bought."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from modelyard.engine import Engine
from modelyard.errors import ProviderResponseError
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.types import ChatRequest, Chunk, ToolCallDelta, Usage
from tests.cache.conftest import ask, calls, status


async def read(engine: Engine, request: ChatRequest, request_id: str | None = None) -> list[Chunk]:
    live = await engine.stream(request, request_id=request_id)
    return [chunk async for chunk in live]


def text(chunks: list[Chunk]) -> str:
    return "".join(c.content or "" for c in chunks)


async def test_completed_stream_is_stored_and_serves_a_plain_call(
    engine: Engine, ledger: InMemoryLedger, providers: dict[str, FunctionProvider]
) -> None:
    streamed = await read(engine, ask(model="cheap", stream=True), "r1")
    _, outcome = await engine.complete(ask(model="cheap"), request_id="r2")
    assert status(outcome) == "hit"
    assert outcome.completion.content == text(streamed) == "ok from small"
    assert outcome.completion.usage.output_tokens == 20
    assert calls(providers) == 1
    (record,) = await ledger.records(request_id="r2")
    assert (record.status, record.cost_usd) == ("cached", 0)


async def test_plain_answer_replays_as_a_stream_ending_with_usage(
    engine: Engine, ledger: InMemoryLedger, providers: dict[str, FunctionProvider]
) -> None:
    await engine.complete(ask(model="cheap"), request_id="r1")
    live = await engine.stream(ask(model="cheap", stream=True), request_id="r2")
    assert status(live) == "hit"
    assert live.card.id == "small"
    chunks = [c async for c in live]
    assert text(chunks) == "ok from small"
    assert chunks[-2].finish_reason == "stop"
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (100, 20, 0)
    assert calls(providers) == 1
    (record,) = await ledger.records(request_id="r2")
    assert record.status == "cached"
    assert record.streamed


async def test_tool_calls_survive_the_round_trip(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    async def tool_stream(request: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        yield Chunk(tool_calls=(ToolCallDelta(0, "call_1", "lookup", '{"q": '),))
        yield Chunk(tool_calls=(ToolCallDelta(0, None, None, '"x"}'),))
        yield Chunk(finish_reason="tool_calls")
        yield Chunk(usage=Usage(30, 9))

    providers["cheapco"].stream_fn = tool_stream
    await read(engine, ask(model="cheap", stream=True))
    _, outcome = await engine.complete(ask(model="cheap"))
    assert status(outcome) == "hit"
    (call,) = outcome.completion.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "lookup",
        '{"q": "x"}',
    )
    assert outcome.completion.finish_reason == "tool_calls"
    replay = await read(engine, ask(model="cheap", stream=True))
    (delta,) = next(c for c in replay if c.tool_calls).tool_calls
    assert (delta.id, delta.name, delta.arguments) == ("call_1", "lookup", '{"q": "x"}')


async def test_stream_cut_mid_way_is_not_stored(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    async def cut(request: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        yield Chunk(content="half an ans")
        raise ProviderResponseError("connection reset", provider="cheapco")

    providers["cheapco"].stream_fn = cut
    with pytest.raises(ProviderResponseError):
        await read(engine, ask(model="cheap", stream=True))
    providers["cheapco"].stream_fn = None
    _, outcome = await engine.complete(ask(model="cheap"))
    assert status(outcome) == "miss"


async def test_stream_abandoned_by_the_caller_is_not_stored(engine: Engine) -> None:
    live = await engine.stream(ask(model="cheap", stream=True))
    iterator = aiter(live)
    await anext(iterator)
    await iterator.aclose()
    _, outcome = await engine.complete(ask(model="cheap"))
    assert status(outcome) == "miss"


async def test_stream_without_a_finish_reason_is_not_stored(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    async def unfinished(request: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        yield Chunk(content="no end")
        yield Chunk(usage=Usage(5, 2))

    providers["cheapco"].stream_fn = unfinished
    await read(engine, ask(model="cheap", stream=True))
    _, outcome = await engine.complete(ask(model="cheap"))
    assert status(outcome) == "miss"
