"""The attempt life cycle end to end: written ahead, completed in place, discarded when
the call never left, billed `cancelled` only in flight; provider usage checked."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from modelyard.engine import Engine, build_engine
from modelyard.ledger import InMemoryLedger, LedgerStore, SqlLedger
from modelyard.providers import openai as openai_adapter
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from modelyard.types import ChatRequest, Completion, Usage
from tests.stack import ENV, stack_config

CACHED_11 = {"cached_tokens": 11}
Handler = Callable[[httpx.Request], httpx.Response]


def request(model: str = "cheap", **extra: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
    )


def openai_answer(usage: dict[str, Any], content: str = "hi there") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-abc",
            "object": "chat.completion",
            "created": 0,
            "model": "small",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        },
    )


def wire_engine(ledger: LedgerStore, handler: Handler) -> tuple[Engine, list[httpx.Request]]:
    """An engine with the real adapters over a mock transport that counts calls."""
    sent: list[httpx.Request] = []

    def counting(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        return handler(req)

    client = httpx.AsyncClient(transport=httpx.MockTransport(counting))
    counter = iter(range(1, 1_000_000))
    engine = build_engine(
        stack_config(),
        env=ENV,
        ledger=ledger,
        client=client,
        rng=random.Random(1),
        ids=lambda: f"id{next(counter)}",
    )
    return engine, sent


@pytest.fixture
async def sqlite_ledger(tmp_path: Path) -> AsyncIterator[SqlLedger]:
    store = SqlLedger(f"sqlite:///{tmp_path / 'l.db'}")
    await store.open()
    yield store
    await store.close()


async def test_the_record_is_written_ahead_before_the_provider_is_called(
    ledger: InMemoryLedger,
) -> None:
    seen: list[tuple[str, str, int]] = []

    async def complete(req: ChatRequest, upstream: str) -> Completion:
        seen.extend((r.status, r.usage_source, r.output_tokens) for r in await ledger.records())
        return Completion("c1", upstream, "ok", usage=Usage(10, 2))

    providers = {n: FunctionProvider(complete) for n in ("cheapco", "bigco", "onprem")}
    engine = build_engine(stack_config(), env=ENV, ledger=ledger, providers=providers)
    await engine.complete(request(max_tokens=50), request_id="r1")
    # Reserved: the caller's output cap (50 tokens), the record flagged as an estimate.
    assert seen == [("started", "estimated", 50)]
    [record] = await ledger.records()
    assert (record.status, record.usage_source, record.output_tokens) == ("ok", "reported", 2)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -500, "completion_tokens": 3},
        {"prompt_tokens": 10**17, "completion_tokens": 10**17},
        {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": CACHED_11},
    ],
    ids=["negative", "absurd", "cached-above-input"],
)
async def test_impossible_usage_is_billed_as_an_estimate(
    sqlite_ledger: SqlLedger, usage: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    engine, _ = wire_engine(sqlite_ledger, lambda _: openai_answer(usage))
    with caplog.at_level(logging.WARNING, "modelyard.executor"):
        _, outcome = await engine.complete(request(), request_id="r-usage")
    [record] = await sqlite_ledger.records()
    assert record.status == "ok"
    assert record.usage_source == "estimated"
    assert 0 < record.input_tokens < 100
    assert 0 < record.output_tokens < 10  # "hi there"
    assert Decimal(0) < record.cost_usd == outcome.cost_usd < Decimal("0.001")
    # The caller sees the usage that was billed, not the impossible one.
    assert outcome.completion.usage.input_tokens == record.input_tokens
    assert "r-usage" in caplog.text


async def test_non_integer_usage_is_estimated(ledger: InMemoryLedger) -> None:
    async def complete(req: ChatRequest, upstream: str) -> Completion:
        return Completion("c1", upstream, "ok", usage=Usage(10.5, 2))  # type: ignore[arg-type]

    providers = {n: FunctionProvider(complete) for n in ("cheapco", "bigco", "onprem")}
    engine = build_engine(stack_config(), env=ENV, ledger=ledger, providers=providers)
    await engine.complete(request(), request_id="r")
    [record] = await ledger.records()
    assert record.usage_source == "estimated"
    assert isinstance(record.input_tokens, int)


async def test_streamed_impossible_usage_is_shown_and_billed_as_estimate(
    ledger: InMemoryLedger,
) -> None:
    async def complete(req: ChatRequest, upstream: str) -> Completion:
        return Completion("c1", upstream, "one two three", usage=Usage(-7, -9))

    providers = {n: FunctionProvider(complete) for n in ("cheapco", "bigco", "onprem")}
    engine = build_engine(stack_config(), env=ENV, ledger=ledger, providers=providers)
    live = await engine.stream(request(), request_id="rs")
    shown = [chunk.usage async for chunk in live if chunk.usage is not None]
    [record] = await ledger.records()
    assert record.usage_source == "estimated"
    assert shown == [Usage(record.input_tokens, record.output_tokens)]
    assert record.input_tokens > 0
    assert record.output_tokens > 0
    assert record.cost_usd > 0


async def test_a_bug_before_the_request_left_is_a_500_with_no_record(
    ledger: InMemoryLedger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine, sent = wire_engine(ledger, lambda _: openai_answer({}))

    def broken(*args: object, **kwargs: object) -> dict[str, Any]:
        raise RuntimeError("bug in body building")

    monkeypatch.setattr(openai_adapter, "build_body", broken)
    transport = httpx.ASGITransport(app=create_app(engine), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        with caplog.at_level(logging.ERROR):
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "cheap", "messages": [{"role": "user", "content": "x"}]},
                headers={"x-request-id": "req-bug-1"},
            )
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "req-bug-1" in response.json()["error"]["message"]
    assert "req-bug-1" in caplog.text
    assert sent == []
    assert await ledger.records() == []


async def test_a_bug_while_the_call_is_in_flight_is_billed_cancelled(
    ledger: InMemoryLedger,
) -> None:
    def explode(_: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug while the request was out")

    engine, sent = wire_engine(ledger, explode)
    with pytest.raises(RuntimeError):
        await engine.complete(request(), request_id="r-flight")
    assert len(sent) == 1
    [record] = await ledger.records()
    assert (record.status, record.usage_source) == ("cancelled", "estimated")
    assert record.input_tokens > 0


async def test_non_finite_passthrough_never_reaches_the_wire_nor_the_bill(
    ledger: InMemoryLedger,
) -> None:
    # Behind the door (which refuses it with a 400) the adapter cannot encode NaN.
    engine, sent = wire_engine(ledger, lambda _: openai_answer({}))
    with pytest.raises(ValueError, match="JSON"):
        await engine.complete(request(seed=float("nan")), request_id="r-nan")
    assert sent == []
    assert await ledger.records() == []


async def test_every_upstream_call_is_one_record(ledger: InMemoryLedger) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2}
    engine, sent = wire_engine(ledger, lambda _: openai_answer(usage))
    for i in range(5):
        await engine.complete(request(), request_id=f"r{i}")
    records = await ledger.records()
    assert len(records) == len(sent) == 5
    assert {r.status for r in records} == {"ok"}
    assert json.loads(sent[0].content)["model"] == "small"


class RemoteFunctionProvider(FunctionProvider):
    """A provider that says it talks HTTP but never sends: a call stuck before the wire."""

    remote = True


async def _cancel_once_started(engine: Engine, started: anyio.Event) -> None:
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            await engine.complete(request(), request_id="r-cancel")

        tg.start_soon(call)
        await started.wait()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(("remote", "billed"), [(True, False), (False, True)])
async def test_a_call_cancelled_before_the_wire_is_not_billed(
    ledger: InMemoryLedger, remote: bool, billed: bool
) -> None:
    started = anyio.Event()

    async def stuck(req: ChatRequest, upstream: str) -> Completion:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    cls = RemoteFunctionProvider if remote else FunctionProvider
    providers = {n: cls(stuck) for n in ("cheapco", "bigco", "onprem")}
    engine = build_engine(stack_config(), env=ENV, ledger=ledger, providers=providers)
    await _cancel_once_started(engine, started)
    records = await ledger.records()
    # A remote call whose request never left costs nothing; an in-process one may have.
    assert [r.status for r in records] == (["cancelled"] if billed else [])


async def test_a_call_cancelled_after_its_request_left_is_billed(ledger: InMemoryLedger) -> None:
    arrived = anyio.Event()

    async def hang(_: httpx.Request) -> httpx.Response:
        arrived.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    client = httpx.AsyncClient(transport=httpx.MockTransport(hang))
    engine = build_engine(stack_config(), env=ENV, ledger=ledger, client=client)
    await _cancel_once_started(engine, arrived)
    [record] = await ledger.records()
    assert (record.status, record.usage_source) == ("cancelled", "estimated")
