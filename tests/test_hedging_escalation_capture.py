"""Executor behaviours beyond plain fallback: hedged streams (race to the first
content, loser cancelled and billed), specialist escalation on low confidence, and
opt-in capture of prompts and answers for distillation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import anyio
import pytest

from modelyard.engine import Engine
from modelyard.errors import LowConfidenceError, ProviderServerError
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.routing.policies import BestQualityPolicy
from modelyard.types import ChatRequest, Chunk, Completion, Usage

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def best_request(**extra: object) -> ChatRequest:
    # "best" ranks frontier (bigco) first, then vision-mid (cheapco).
    return ChatRequest.model_validate(
        {"model": "best", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS} | extra
    )


def hedge(engine: Engine, after_ms: float) -> None:
    engine.router.policies["best"] = BestQualityPolicy(
        BestQualityPolicy.Settings(hedge_after_ms=after_ms)
    )


def streaming(first_delay_s: float, words: list[str], *, fail: bool = False) -> FunctionProvider:
    """A provider whose stream waits `first_delay_s` before its first content."""

    async def stream(req: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        await anyio.sleep(first_delay_s)
        if fail:
            raise ProviderServerError(f"{upstream}: 500")
        for word in words:
            yield Chunk(content=word)
        yield Chunk(finish_reason="stop", usage=Usage(input_tokens=10, output_tokens=len(words)))

    async def never(req: ChatRequest, upstream: str) -> Completion:
        raise AssertionError("streamed requests do not call complete()")

    return FunctionProvider(never, stream)


# --- hedged streams ----------------------------------------------------------


async def test_hedged_stream_takes_the_runner_up_when_the_first_is_slow_to_start(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = streaming(5.0, ["late"])
    providers["cheapco"] = streaming(0.0, ["quick ", "answer"])
    hedge(engine, after_ms=50)
    with anyio.fail_after(2):
        live = await engine.stream(best_request(stream=True), request_id="hs1")
        text = "".join([c.content or "" async for c in live])
    assert (live.card.id, text) == ("vision-mid", "quick answer")
    records = {r.model_id: r for r in await ledger.records(request_id="hs1")}
    assert records["vision-mid"].status == "ok"
    assert records["frontier"].status == "cancelled"
    assert records["frontier"].input_tokens > 0, "the loser is billed for its prompt"
    assert records["frontier"].output_tokens == 0, "it streamed nothing"
    assert len(records) == 2


async def test_hedged_stream_keeps_the_first_when_it_wins_the_race(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    # The first choice is slower than the hedge delay, but faster than the runner-up.
    providers["bigco"] = streaming(0.15, ["frontier ", "wins"])
    providers["cheapco"] = streaming(5.0, ["too late"])
    hedge(engine, after_ms=30)
    with anyio.fail_after(2):
        live = await engine.stream(best_request(stream=True), request_id="hs2")
        text = "".join([c.content or "" async for c in live])
    assert (live.card.id, text) == ("frontier", "frontier wins")
    statuses = {r.model_id: r.status for r in await ledger.records(request_id="hs2")}
    assert statuses == {"frontier": "ok", "vision-mid": "cancelled"}
    assert len(providers["cheapco"].calls) == 1, "the runner-up was started"


async def test_hedged_stream_not_started_when_the_first_is_quick(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = streaming(0.0, ["fast"])
    hedge(engine, after_ms=500)
    live = await engine.stream(best_request(stream=True), request_id="hs3")
    assert "".join([c.content or "" async for c in live]) == "fast"
    assert providers["cheapco"].calls == []
    assert [r.model_id for r in await ledger.records(request_id="hs3")] == ["frontier"]


async def test_hedged_stream_whose_runner_up_fails_still_gets_the_first(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = streaming(0.2, ["slow ", "but sure"])
    providers["cheapco"] = streaming(0.0, [], fail=True)
    hedge(engine, after_ms=20)
    with anyio.fail_after(2):
        live = await engine.stream(best_request(stream=True), request_id="hs4")
        text = "".join([c.content or "" async for c in live])
    assert (live.card.id, text) == ("frontier", "slow but sure")
    statuses = [(r.model_id, r.status) for r in await ledger.records(request_id="hs4")]
    assert sorted(statuses) == [("frontier", "ok"), ("vision-mid", "error")]


# --- escalation on low confidence --------------------------------------------


def unsure(confidence: float, label: str = "card_arrival") -> FunctionProvider:
    """A classifier that answers `label` but below its threshold of 0.8."""

    async def complete(req: ChatRequest, upstream: str) -> Completion:
        answer = Completion(
            id="spec",
            model=upstream,
            content=label,
            usage=Usage(input_tokens=3, output_tokens=1, cost_usd=Decimal("0.000001")),
            confidence=confidence,
        )
        raise LowConfidenceError(
            f"confidence {confidence:.2f} < 0.80 ({label})",
            confidence=confidence,
            threshold=0.8,
            completion=answer,
            provider="bigco",
        )

    async def stream(req: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        await complete(req, upstream)
        yield Chunk(content="unreachable")

    return FunctionProvider(complete, stream)


async def test_low_confidence_escalates_to_the_next_model_with_both_calls_billed(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = unsure(0.41)
    _, outcome = await engine.complete(best_request(), request_id="e1")
    assert outcome.card.id == "vision-mid"
    assert [f.model_id for f in outcome.failed] == ["frontier"]
    first, second = await ledger.records(request_id="e1")
    assert (first.model_id, first.status, first.confidence) == ("frontier", "escalated", 0.41)
    assert first.cost_usd == Decimal("0.000001"), "the box's reported cost is billed"
    assert first.error_class == "LowConfidenceError"
    assert (second.model_id, second.status) == ("vision-mid", "ok")
    assert engine.executor.health.unavailable(engine.executor.monotonic()) == {}


async def test_escalation_with_nowhere_to_go_returns_the_specialists_answer(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = unsure(0.55, label="lost_card")
    providers["cheapco"] = FunctionProvider(_raises(ProviderServerError("cheapco: 500")))
    _, outcome = await engine.complete(best_request(), request_id="e2")
    assert (outcome.card.id, outcome.completion.content) == ("frontier", "lost_card")
    assert outcome.cost_usd == Decimal("0.000001")
    assert [f.model_id for f in outcome.failed] == ["vision-mid"]
    statuses = [(r.model_id, r.status) for r in await ledger.records(request_id="e2")]
    assert statuses == [("frontier", "escalated"), ("vision-mid", "error")]


async def test_streamed_escalation_fails_over_and_last_resort_replays_the_answer(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = unsure(0.3)
    live = await engine.stream(best_request(stream=True), request_id="e3")
    assert live.card.id == "vision-mid"
    assert "".join([c.content or "" async for c in live]) == "ok from vision-mid"

    providers["cheapco"] = streaming(0.0, [], fail=True)
    live = await engine.stream(best_request(stream=True), request_id="e4")
    chunks = [c async for c in live]
    assert "".join(c.content or "" for c in chunks) == "card_arrival"
    assert live.cost_usd == Decimal("0.000001")
    statuses = [r.status for r in await ledger.records(request_id="e4")]
    assert statuses == ["escalated", "error"], "the replayed answer is not billed twice"


def _raises(exc: Exception) -> Callable[[ChatRequest, str], Awaitable[Completion]]:
    async def complete(req: ChatRequest, upstream: str) -> Completion:
        raise exc

    return complete


# --- capture for distillation ------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_captured_task_keeps_prompt_and_answer_linked_to_its_record(
    engine: Engine, ledger: InMemoryLedger, stream: bool
) -> None:
    engine.executor.capture_tasks = frozenset({"intents"})
    hinted = best_request(modelyard={"task": "intents"}, stream=stream)
    if stream:
        live = await engine.stream(hinted, request_id="c1")
        _ = [c async for c in live]
    else:
        await engine.complete(hinted, request_id="c1")
    await engine.complete(best_request(modelyard={"task": "other"}), request_id="c2")
    await engine.complete(best_request(), request_id="c3")

    [captured] = await ledger.exchanges(task="intents")
    [record] = await ledger.records(request_id="c1")
    assert captured.record_id == record.id
    assert (captured.model_id, captured.response) == ("frontier", "ok from frontier")
    assert captured.messages == [{"role": "user", "content": "hi"}]
    assert await ledger.exchanges(task="other") == []


async def test_nothing_is_captured_by_default(engine: Engine, ledger: InMemoryLedger) -> None:
    await engine.complete(best_request(modelyard={"task": "intents"}), request_id="c4")
    assert await ledger.exchanges(task="intents") == []


async def test_capture_is_configured_by_the_capture_section(ledger: InMemoryLedger) -> None:
    from modelyard.config import parse
    from modelyard.engine import build_engine
    from tests.stack import ENV, STACK

    config = parse({**STACK, "capture": {"tasks": ["intents"]}}, "test.yaml")
    engine = build_engine(config, env=ENV, ledger=ledger, providers={})
    assert engine.executor.capture_tasks == frozenset({"intents"})
