"""The executor runs a cascade hop after hop through `Engine.complete`/`stream`:
fallback within a hop, escalation on a rejected or failed hop, every attempt billed
with the decision id, its step and role; the caller pays the total."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, ClassVar

import anyio
import pytest

from modelyard.errors import AllAttemptsFailedError, ProviderServerError, UpstreamRequestError
from modelyard.ledger import CallRecord, InMemoryLedger
from modelyard.routing.cascade import CascadePolicy
from modelyard.types import ChatRequest, Completion, Usage
from modelyard.verifiers.base import Verdict, VerifyContext
from tests.cascade.helpers import AGREE, LOCAL_2, ask, engine_for


def cascade(tiers: list[Any], verifier: dict[str, Any] | None = None, **extra: Any) -> Any:
    return {"frugal": {"type": "cascade", "tiers": tiers, "verifier": verifier or AGREE, **extra}}


def rows(records: list[CallRecord]) -> list[tuple[str, int | None, str | None, str]]:
    return [(r.model_id, r.step, r.role, r.status) for r in records]


async def records(ledger: InMemoryLedger, request_id: str) -> list[CallRecord]:
    return list(await ledger.records(request_id=request_id))


async def test_a_parallel_tier_that_agrees_is_served_and_later_tiers_never_run(
    ledger: InMemoryLedger,
) -> None:
    script = {"small": "Answer: C", "vision-mid": "The answer is (C)", "frontier": "Answer: D"}
    engine = engine_for(script, ledger, cascade([["small", "vision-mid"], "frontier"]))
    decision, out = await engine.complete(ask(), request_id="r1")
    assert (out.card.id, out.completion.content) == ("small", "Answer: C")
    got = await records(ledger, "r1")
    # Both members answered; the one served is the `answer`, the other a `candidate`.
    assert rows(got) == [("small", 1, "answer", "ok"), ("vision-mid", 1, "candidate", "ok")]
    assert {r.decision_id for r in got} == {decision.id}
    assert [r.verifier_score for r in got] == [1.0, 1.0]
    assert out.cost_usd == sum((r.cost_usd for r in got), Decimal(0))
    assert out.cascade is not None
    assert out.cascade.headers() == {
        "x-modelyard-hops": "1:small+vision-mid=accepted",
        "x-modelyard-verdict": "accepted",
        "x-modelyard-verifier-score": "1.0000",
    }


async def test_rejected_hops_are_billed_escalated_and_the_last_is_served(
    ledger: InMemoryLedger,
) -> None:
    script = {"small": "Answer: B", "vision-mid": "Answer: C", "frontier": "Answer: A"}
    engine = engine_for(script, ledger, cascade(["small", "vision-mid", "frontier"]))
    _, out = await engine.complete(ask(), request_id="r2")
    assert out.card.id == "frontier"
    got = await records(ledger, "r2")
    assert rows(got) == [
        ("small", 1, "candidate", "escalated"),
        ("vision-mid", 2, "candidate", "escalated"),
        ("frontier", 3, "answer", "ok"),
    ]
    # One answer alone agrees with nobody (0.5 of min_agree 2); B and C disagree.
    assert [r.verifier_score for r in got] == [0.5, 0.5, None]
    assert got[0].error_class == "AnswerRejectedError"
    assert "1 of 1 answers agree 'B'" in (got[0].error_message or "")
    assert all(r.cost_usd > 0 for r in got)
    assert out.cost_usd == sum((r.cost_usd for r in got), Decimal(0))
    assert out.cascade is not None
    assert out.cascade.headers()["x-modelyard-hops"] == (
        "1:small=rejected, 2:vision-mid=rejected, 3:frontier=final"
    )
    assert out.cascade.headers()["x-modelyard-verdict"] == "final"


async def test_two_sequential_hops_that_agree_stop_the_cascade(ledger: InMemoryLedger) -> None:
    script = {"small": "Answer: C", "vision-mid": "(C)", "frontier": "Answer: A"}
    engine = engine_for(script, ledger, cascade(["small", "vision-mid", "frontier"]))
    _, out = await engine.complete(ask(), request_id="r3")
    assert out.card.id == "vision-mid"
    assert rows(await records(ledger, "r3")) == [
        ("small", 1, "candidate", "escalated"),
        ("vision-mid", 2, "answer", "ok"),
    ]


async def test_fallback_within_a_hop_on_provider_errors(ledger: InMemoryLedger) -> None:
    script = {
        "small": ProviderServerError("cheapco: 500"),
        "local-llm": "Answer: C",
        "vision-mid": "Answer: C",
        "frontier": "Answer: C",
    }
    tiers = [{"model": "small", "fallback": ["local-llm"]}, "vision-mid", "frontier"]
    engine = engine_for(script, ledger, cascade(tiers))
    _, out = await engine.complete(ask(), request_id="r4")
    assert out.card.id == "vision-mid"
    assert rows(await records(ledger, "r4")) == [
        ("small", 1, "candidate", "error"),
        ("local-llm", 1, "candidate", "escalated"),
        ("vision-mid", 2, "answer", "ok"),
    ]
    assert [f.model_id for f in out.failed] == ["small"]


async def test_a_hop_that_cannot_answer_escalates(ledger: InMemoryLedger) -> None:
    script = {"small": ProviderServerError("down"), "frontier": "Answer: C"}
    engine = engine_for(script, ledger, cascade(["small", "frontier"]))
    _, out = await engine.complete(ask(), request_id="r5")
    assert out.card.id == "frontier"
    assert out.cascade is not None
    assert out.cascade.headers()["x-modelyard-hops"] == "1:small=failed, 2:frontier=final"


async def test_every_hop_failing_is_a_503_listing_them(ledger: InMemoryLedger) -> None:
    script = {"small": ProviderServerError("down"), "frontier": ProviderServerError("down too")}
    engine = engine_for(script, ledger, cascade(["small", "frontier"]))
    with pytest.raises(AllAttemptsFailedError, match="no cascade step could answer") as info:
        await engine.complete(ask(), request_id="r6")
    assert info.value.http_status == 503
    assert "1:small=failed, 2:frontier=failed" in info.value.message


async def test_the_callers_own_4xx_ends_the_cascade(ledger: InMemoryLedger) -> None:
    script = {"small": UpstreamRequestError("bad request", upstream_status=400, provider="x")}
    engine = engine_for(script, ledger, cascade(["small", "frontier"]))
    with pytest.raises(UpstreamRequestError):
        await engine.complete(ask(), request_id="r7")
    assert rows(await records(ledger, "r7")) == [("small", 1, "candidate", "error")]


class Boom:
    """A verifier with a bug."""

    name: ClassVar[str] = "boom"

    async def verify(self, ctx: VerifyContext) -> Verdict:
        raise ZeroDivisionError("division by zero")


async def test_a_verifier_that_raises_rejects_logs_and_escalates(
    ledger: InMemoryLedger, caplog: pytest.LogCaptureFixture
) -> None:
    script = {"small": "Answer: C", "frontier": "Answer: C"}
    engine = engine_for(script, ledger, cascade(["small", "frontier"]))
    policy = engine.router.policies["frugal"]
    assert isinstance(policy, CascadePolicy)
    policy.verifier = Boom()
    with caplog.at_level(logging.WARNING):
        _, out = await engine.complete(ask(), request_id="r8")
    assert out.card.id == "frontier"
    first = (await records(ledger, "r8"))[0]
    assert (first.status, first.verifier_score) == ("escalated", None)
    assert "ZeroDivisionError: division by zero" in (first.error_message or "")
    assert "verifier agreement raised" in caplog.text


async def test_an_extractor_that_finds_nothing_is_disagreement(ledger: InMemoryLedger) -> None:
    number = {"type": "agreement", "min_agree": 2, "extract": "number"}
    script = {"small": "no idea", "vision-mid": "no idea", "frontier": "It is 42."}
    engine = engine_for(script, ledger, cascade([["small", "vision-mid"], "frontier"], number))
    _, out = await engine.complete(ask(), request_id="r9")
    assert out.completion.content == "It is 42."
    got = await records(ledger, "r9")
    assert [r.status for r in got] == ["escalated", "escalated", "ok"]
    assert "number extractor found nothing" in (got[0].error_message or "")


async def test_the_schema_verifier_escalates_an_invalid_answer(ledger: InMemoryLedger) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    script = {
        "vision-mid": '{"city": "Oslo", "population": "many"}',
        "frontier": '{"city": "Oslo", "population": 709000}',
    }
    policies = cascade(["vision-mid", "frontier"], {"type": "schema"})
    engine = engine_for(script, ledger, policies)
    _, out = await engine.complete(ask(response_format=fmt), request_id="s1")
    assert out.card.id == "frontier"
    first = (await records(ledger, "s1"))[0]
    assert first.status == "escalated"
    assert "population" in (first.error_message or "")


def judged(request: ChatRequest, upstream: str) -> Any:
    """Answers, and as frontier (the judge) a score: low for small, high otherwise."""
    if upstream == "frontier":
        text = request.messages[-1].text()
        score = "3" if "from small" in text else "9"
        return Completion(id="j", model=upstream, content=f"Score: {score}", usage=Usage(200, 5))
    return f"an answer from {upstream}"


async def test_the_judge_is_routed_and_billed_with_the_decision_step_and_role(
    ledger: InMemoryLedger,
) -> None:
    verifier = {"type": "judge", "model": "best-model", "threshold": 0.7}
    engine = engine_for(judged, ledger, cascade(["small", "vision-mid", "local-llm"], verifier))
    decision, out = await engine.complete(ask(), request_id="j1")
    assert out.card.id == "vision-mid"
    got = await records(ledger, "j1")
    assert rows(got) == [
        ("small", 1, "candidate", "escalated"),
        ("frontier", 1, "judge", "ok"),
        ("vision-mid", 2, "answer", "ok"),
        ("frontier", 2, "judge", "ok"),
    ]
    assert {r.decision_id for r in got} == {decision.id}
    assert [r.verifier_score for r in got if r.role != "judge"] == [0.3, 0.9]
    # The caller pays for every answer and every judgement.
    assert out.cost_usd == sum((r.cost_usd for r in got), Decimal(0))
    assert out.cost_usd > sum((r.cost_usd for r in got if r.role != "judge"), Decimal(0))


async def test_a_judge_without_a_score_rejects(ledger: InMemoryLedger) -> None:
    def mute(request: ChatRequest, upstream: str) -> Any:
        return "I'd rather not say" if upstream == "frontier" else f"from {upstream}"

    verifier = {"type": "judge", "model": "frontier"}
    engine = engine_for(mute, ledger, cascade(["small", "vision-mid"], verifier))
    _, out = await engine.complete(ask(), request_id="j2")
    assert out.card.id == "vision-mid"
    first = (await records(ledger, "j2"))[0]
    assert first.status == "escalated"
    assert "the judge gave no score" in (first.error_message or "")


async def test_stream_holds_back_until_a_hop_is_accepted(ledger: InMemoryLedger) -> None:
    script = {"small": "Answer: B", "vision-mid": "Answer: C", "local-llm": "The answer is (C)"}
    engine = engine_for(script, ledger, cascade(["small", ["vision-mid", "local-llm"], "frontier"]))
    live = await engine.stream(ask(stream=True), request_id="st1")
    text = "".join([c.content or "" async for c in live])
    assert text == "Answer: C"
    assert "B" not in text
    assert live.cascade is not None
    assert live.cascade.headers()["x-modelyard-hops"] == (
        "1:small=rejected, 2:vision-mid+local-llm=accepted"
    )
    got = await records(ledger, "st1")
    assert [r.status for r in got] == ["escalated", "ok", "ok"]
    assert live.cost_usd == sum((r.cost_usd for r in got), Decimal(0))


async def test_the_last_hop_streams_directly(ledger: InMemoryLedger) -> None:
    script = {"small": "Answer: B", "frontier": "Answer: D, since the others are wrong"}
    engine = engine_for(script, ledger, cascade(["small", "frontier"]))
    live = await engine.stream(ask(stream=True), request_id="st2")
    chunks = [c.content or "" async for c in live]
    assert len([c for c in chunks if c]) > 1, "streamed word by word, not replayed whole"
    assert "".join(chunks) == script["frontier"]
    assert live.cascade is not None
    assert live.cascade.headers()["x-modelyard-hops"] == "1:small=rejected, 2:frontier=streamed"
    got = await records(ledger, "st2")
    assert rows(got) == [("small", 1, "candidate", "escalated"), ("frontier", 2, "answer", "ok")]
    assert got[1].streamed


async def test_parsed_answers_on_completions_are_compared_before_extractors(
    ledger: InMemoryLedger,
) -> None:
    # Replayed rows carry the dataset's parsed answer: the texts differ, the answers agree.
    def replayed(request: ChatRequest, upstream: str) -> Completion:
        return Completion(
            id="r", model=upstream, content=f"long reasoning by {upstream}", parsed_answer="42.0"
        )

    verifier = {"type": "agreement", "min_agree": 2, "extract": "number"}
    engine = engine_for(replayed, ledger, cascade(["small", "vision-mid", "frontier"], verifier))
    _, out = await engine.complete(ask(), request_id="p1")
    assert out.card.id == "vision-mid"


async def test_a_cancelled_request_bills_the_answer_it_received_as_cancelled(
    ledger: InMemoryLedger,
) -> None:
    judging = anyio.Event()

    async def judge_hangs(request: ChatRequest, upstream: str) -> Any:
        if upstream == "frontier":
            judging.set()
            await anyio.sleep_forever()
        return f"an answer from {upstream}"

    verifier = {"type": "judge", "model": "frontier"}
    engine = engine_for(judge_hangs, ledger, cascade(["small", "vision-mid"], verifier))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: engine.complete(ask(), request_id="c1"))
        await judging.wait()
        tg.cancel_scope.cancel()
    got = await records(ledger, "c1")
    assert rows(got) == [
        ("small", 1, "candidate", "cancelled"),
        ("frontier", 1, "judge", "cancelled"),
    ]
    # The answer that came back is billed for its real usage, not an estimate.
    assert (got[0].input_tokens, got[0].output_tokens) == (100, 10)


async def test_the_judge_keeps_the_requests_data_class(ledger: InMemoryLedger) -> None:
    def answers(request: ChatRequest, upstream: str) -> Any:
        assert upstream != "frontier", "a confidential conversation reached a public judge"
        return f"from {upstream}"

    verifier = {"type": "judge", "model": "frontier"}
    policies = cascade(["local-llm", "local-2"], verifier)
    engine = engine_for(answers, ledger, policies, models=LOCAL_2)
    _, out = await engine.complete(ask(modelyard={"data_class": "confidential"}), request_id="d1")
    # The public judge may not read it: no judge qualifies, the verdict is a rejection.
    assert out.card.id == "local-2"
    assert out.cascade is not None
    assert "NoQualifiedModelError" in out.cascade.hops[0].reason
    assert [r.model_id for r in await records(ledger, "d1")] == ["local-llm", "local-2"]
    # The same cascade on internal data asks the judge.
    await engine.complete(ask(), request_id="d2")
    assert "frontier" in [r.model_id for r in await records(ledger, "d2")]
