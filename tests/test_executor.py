"""The executor: fallback on retryable failures only, one ledger record per attempt,
stream failover before the first content, honest billing of partial streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import anyio
import pytest

from modelyard.engine import Engine
from modelyard.errors import (
    AllAttemptsFailedError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderServerError,
    UpstreamRequestError,
)
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.types import ChatRequest, Chunk, Completion, Usage

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def request(model: str = "auto", **extra: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    )


def failing(exc: Exception) -> FunctionProvider:
    async def complete(req: ChatRequest, upstream: str) -> Completion:
        raise exc

    return FunctionProvider(complete)


async def test_success_writes_one_ok_record_with_cost(
    engine: Engine, ledger: InMemoryLedger
) -> None:
    decision, outcome = await engine.complete(request("cheap"), request_id="r1")
    records = await ledger.records(request_id="r1")
    assert len(records) == 1
    rec = records[0]
    assert (rec.status, rec.model_id, rec.deployment, rec.attempt) == ("ok", "small", "cheapco", 1)
    assert rec.decision_id == decision.id
    # 100 in * 0.10 + 20 out * 0.40 per million
    assert rec.cost_usd == outcome.cost_usd == Decimal("0.000018")
    assert rec.reasons["candidates"][0]["model"] == "small"
    assert rec.scorer_version == "priors-v1"


async def test_retryable_failure_falls_back_down_the_ranked_list(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = failing(ProviderOverloadedError("bigco: overloaded", provider="bigco"))
    engine.executor.providers = providers
    decision, outcome = await engine.complete(request("best", tools=TOOLS), request_id="r2")
    assert [c.card.id for c in decision.candidates] == ["frontier", "vision-mid"]
    assert outcome.card.id == "vision-mid"
    assert [f.model_id for f in outcome.failed] == ["frontier"]
    records = await ledger.records(request_id="r2")
    assert [(r.model_id, r.status, r.attempt) for r in records] == [
        ("frontier", "error", 1),
        ("vision-mid", "ok", 2),
    ]
    assert records[0].error_class == "ProviderOverloadedError"
    assert records[0].cost_usd == 0


async def test_callers_own_4xx_is_returned_without_fallback(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    bad = UpstreamRequestError("temperature too high", upstream_status=422, provider="bigco")
    providers["bigco"] = failing(bad)
    with pytest.raises(UpstreamRequestError) as info:
        await engine.complete(request("best", tools=TOOLS), request_id="r3")
    assert info.value.http_status == 422
    assert len(providers["cheapco"].calls) == 0
    assert [r.status for r in await ledger.records(request_id="r3")] == ["error"]


async def test_every_candidate_failing_is_503_listing_what_was_tried(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = failing(ProviderServerError("bigco: 500", provider="bigco"))
    # A Retry-After longer than retry_wait_max_s is not waited out.
    providers["cheapco"] = failing(ProviderRateLimitError("cheapco: 429", retry_after=30.0))
    with pytest.raises(AllAttemptsFailedError) as info:
        await engine.complete(request("best", tools=TOOLS), request_id="r4")
    assert info.value.status_code == 503
    assert "frontier: bigco: 500" in info.value.message
    assert "vision-mid: cheapco: 429" in info.value.message
    assert info.value.group is not None
    assert len(info.value.group.exceptions) == 2
    assert len(await ledger.records(request_id="r4")) == 2


async def test_single_candidate_failure_keeps_its_own_status(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    providers["cheapco"] = failing(ProviderRateLimitError("cheapco: slow down", retry_after=1.0))
    with pytest.raises(ProviderRateLimitError) as info:
        await engine.complete(request("cheap"))
    assert info.value.http_status == 429


async def test_attempts_are_bounded(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    for name in providers:
        providers[name] = failing(ProviderServerError(f"{name}: down", provider=name))
    from dataclasses import replace

    engine.executor.limits = replace(engine.executor.limits, max_attempts=2)
    with pytest.raises(AllAttemptsFailedError):
        await engine.complete(request("cheapest"), request_id="r5")
    assert len(await ledger.records(request_id="r5")) == 2


def scripted_stream(
    chunks: list[Chunk], fail_after: int | None = None, exc: Exception | None = None
):  # type: ignore[no-untyped-def]
    async def stream(req: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        for i, chunk in enumerate(chunks):
            if fail_after is not None and i == fail_after:
                assert exc is not None
                raise exc
            yield chunk

    async def never(req: ChatRequest, upstream: str) -> Completion:
        raise AssertionError("not used")

    return FunctionProvider(never, stream)


async def test_stream_fails_over_before_first_content(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = scripted_stream(
        [Chunk(content="never")], fail_after=0, exc=ProviderOverloadedError("bigco: overloaded")
    )
    live = await engine.stream(request("best", tools=TOOLS, stream=True), request_id="s1")
    assert live.card.id == "vision-mid"
    text = "".join([c.content or "" async for c in live])
    assert text == "ok from vision-mid"
    records = await ledger.records(request_id="s1")
    assert [(r.model_id, r.status) for r in records] == [
        ("frontier", "error"),
        ("vision-mid", "ok"),
    ]
    assert records[1].streamed
    assert records[1].ttft_ms is not None
    assert records[1].output_tokens == 20  # from the usage chunk


async def test_failure_after_content_ends_stream_and_bills_partial(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = scripted_stream(
        [Chunk(content="The answer is"), Chunk(content=" forty"), Chunk(content=" two")],
        fail_after=2,
        exc=ProviderServerError("bigco: connection reset"),
    )
    live = await engine.stream(request("best", tools=TOOLS, stream=True), request_id="s2")
    seen: list[str] = []
    with pytest.raises(ProviderServerError):
        async for chunk in live:
            seen.append(chunk.content or "")
    assert seen == ["The answer is", " forty"]
    records = await ledger.records(request_id="s2")
    assert len(records) == 1, "no silent switch to another model mid-answer"
    assert records[0].status == "error"
    assert records[0].output_tokens == 4  # "The answer is forty" by cl100k
    assert records[0].cost_usd > 0


async def test_cancelled_stream_still_writes_its_record(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    async def slow(req: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        yield Chunk(content="partial")
        await anyio.sleep(10)
        yield Chunk(content="never")

    async def never(req: ChatRequest, upstream: str) -> Completion:
        raise AssertionError

    providers["cheapco"] = FunctionProvider(never, slow)
    live = await engine.stream(request("cheap", stream=True), request_id="s3")
    with anyio.move_on_after(0.2):
        async for _ in live:
            pass
    records = await ledger.records(request_id="s3")
    assert [r.status for r in records] == ["cancelled"]
    assert records[0].output_tokens == 1


async def test_usage_reported_by_provider_is_what_gets_billed(
    providers: dict[str, FunctionProvider], engine: Engine, ledger: InMemoryLedger
) -> None:
    from tests.stack import echo_completion

    providers["cheapco"] = FunctionProvider(
        echo_completion(usage=Usage(input_tokens=1000, output_tokens=500, cached_input_tokens=600))
    )
    _, outcome = await engine.complete(request("vision-mid"), request_id="u1")
    # 400 * 1.00 + 600 * 0.25 + 500 * 4.00 = 2550 per million
    assert outcome.cost_usd == Decimal("0.00255")
    (rec,) = await ledger.records(request_id="u1")
    assert (rec.input_tokens, rec.cached_input_tokens, rec.output_tokens) == (1000, 600, 500)


async def test_short_retry_after_on_the_last_candidate_is_waited_out_and_retried(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    answers = iter([ProviderRateLimitError("cheapco: 429", retry_after=0.05), None])

    async def flaky(req: ChatRequest, upstream: str) -> Completion:
        if (exc := next(answers)) is not None:
            raise exc
        return Completion(id="c", model=upstream, content="second time lucky")

    providers["cheapco"] = FunctionProvider(flaky)
    _, outcome = await engine.complete(request("cheap"), request_id="w1")
    assert outcome.completion.content == "second time lucky"
    records = await ledger.records(request_id="w1")
    assert [(r.model_id, r.status, r.attempt) for r in records] == [
        ("small", "error", 1),
        ("small", "ok", 2),
    ]


def slow(delay: float) -> FunctionProvider:
    async def complete(req: ChatRequest, upstream: str) -> Completion:
        await anyio.sleep(delay)
        return Completion(id="c", model=upstream, content="late")

    return FunctionProvider(complete)


async def test_attempt_timeout_fails_over_and_is_billed_as_timeout(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    from dataclasses import replace

    engine.executor.limits = replace(engine.executor.limits, attempt_timeout_s=0.05)
    providers["bigco"] = slow(5)
    _, outcome = await engine.complete(request("best", tools=TOOLS), request_id="t1")
    assert outcome.card.id == "vision-mid"
    first, second = await ledger.records(request_id="t1")
    assert (first.status, first.error_class) == ("error", "ProviderTimeoutError")
    assert first.latency_ms < 1000
    assert second.status == "ok"


async def test_request_deadline_bounds_the_whole_walk(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    from dataclasses import replace

    engine.executor.limits = replace(engine.executor.limits, request_timeout_s=0.1)
    for name in providers:
        providers[name] = slow(5)
    with anyio.fail_after(2):
        with pytest.raises(AllAttemptsFailedError, match="within"):
            await engine.complete(request("cheapest"), request_id="t2")
    assert len(await ledger.records(request_id="t2")) == 1


async def test_first_token_timeout_fails_a_silent_stream_over(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    from dataclasses import replace

    async def silent(req: ChatRequest, upstream: str) -> AsyncIterator[Chunk]:
        await anyio.sleep(5)
        yield Chunk(content="too late")

    async def never(req: ChatRequest, upstream: str) -> Completion:
        raise AssertionError

    engine.executor.limits = replace(engine.executor.limits, first_token_timeout_s=0.05)
    providers["bigco"] = FunctionProvider(never, silent)
    live = await engine.stream(request("best", tools=TOOLS, stream=True), request_id="t3")
    assert live.card.id == "vision-mid"
    assert "".join([c.content or "" async for c in live]) == "ok from vision-mid"
    first = (await ledger.records(request_id="t3"))[0]
    assert first.error_class == "ProviderTimeoutError"


async def test_failures_open_the_breaker_and_the_router_then_skips_it(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    providers["bigco"] = failing(ProviderServerError("bigco: 500", provider="bigco"))
    for _ in range(5):  # the default failure threshold
        await engine.complete(request("best", tools=TOOLS))
    decision = engine.route(request("best", tools=TOOLS))
    assert [c.card.id for c in decision.candidates] == ["vision-mid"]
    reason = {r.model_id: r.reason for r in decision.rejected}["frontier"]
    assert reason.startswith(
        "deployment 'bigco' skipped: circuit open after 5 consecutive failures"
    )
    calls_before = len(providers["bigco"].calls)
    await engine.complete(request("best", tools=TOOLS))
    assert len(providers["bigco"].calls) == calls_before


async def test_429_puts_the_deployment_in_cool_down(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    providers["bigco"] = failing(ProviderRateLimitError("bigco: 429", retry_after=60.0))
    _, outcome = await engine.complete(request("best", tools=TOOLS))
    assert outcome.card.id == "vision-mid"
    reason = {r.model_id: r.reason for r in engine.route(request("best", tools=TOOLS)).rejected}
    assert "cooling down after 429" in reason["frontier"]


def hedged_engine(engine: Engine, hedge_after_ms: float) -> Engine:
    from modelyard.routing.policies import BestQualityPolicy

    settings = BestQualityPolicy.Settings(hedge_after_ms=hedge_after_ms)
    engine.router.policies["best"] = BestQualityPolicy(settings)
    return engine


async def test_hedge_starts_the_next_model_when_the_first_is_slow_and_bills_the_loser(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = slow(5)
    hedged_engine(engine, hedge_after_ms=50)
    with anyio.fail_after(2):
        decision, outcome = await engine.complete(request("best", tools=TOOLS), request_id="h1")
    assert decision.hedge_after_ms == 50
    assert outcome.card.id == "vision-mid"
    records = {r.model_id: r for r in await ledger.records(request_id="h1")}
    assert records["vision-mid"].status == "ok"
    assert records["frontier"].status == "cancelled"
    assert records["frontier"].input_tokens > 0, "the loser is billed for the prompt it was sent"
    assert records["frontier"].cost_usd > 0


async def test_hedge_not_needed_when_the_first_model_is_fast(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    hedged_engine(engine, hedge_after_ms=500)
    _, outcome = await engine.complete(request("best", tools=TOOLS), request_id="h2")
    assert outcome.card.id == "frontier"
    assert [r.model_id for r in await ledger.records(request_id="h2")] == ["frontier"]
    assert providers["cheapco"].calls == []


async def test_hedged_primary_failing_fast_falls_back_normally(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["bigco"] = failing(ProviderServerError("bigco: 500", provider="bigco"))
    hedged_engine(engine, hedge_after_ms=1000)
    with anyio.fail_after(0.9):
        _, outcome = await engine.complete(request("best", tools=TOOLS), request_id="h3")
    assert outcome.card.id == "vision-mid"
    statuses = [(r.model_id, r.status) for r in await ledger.records(request_id="h3")]
    assert statuses == [("frontier", "error"), ("vision-mid", "ok")]


async def test_429_without_retry_after_on_a_single_model_is_returned_as_429(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    providers["cheapco"] = failing(ProviderRateLimitError("cheapco: slow down", retry_after=None))
    with pytest.raises(ProviderRateLimitError) as info:
        await engine.complete(request("cheap"), request_id="n1")
    assert info.value.http_status == 429
    assert len(await ledger.records(request_id="n1")) == 1, "not retried into its own cool-down"
