"""The runner: members in parallel through the executor, each billed with the decision
id and a role; failures dropped and named; vote and model adjudication; reviews."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from modelyard.council.reviews import reviews_for
from modelyard.errors import AllAttemptsFailedError, ProviderServerError, UpstreamRequestError
from modelyard.ledger import InMemoryLedger
from modelyard.types import ChatRequest, Completion, Usage
from tests.cascade.helpers import USAGE, ask, engine_for
from tests.council.helpers import council, records, rows

ABC = {"small": "Answer: C", "vision-mid": "The answer is (C)", "frontier": "Answer: D"}


def is_adjudication(request: ChatRequest) -> bool:
    return "Several assistants answered" in str(request.messages[0].content)


async def test_members_answer_in_parallel_and_the_vote_is_served(ledger: InMemoryLedger) -> None:
    started: set[str] = set()
    everyone = anyio.Event()

    async def answer(request: ChatRequest, upstream: str) -> str:
        # Each member waits until all three have started: sequential members would
        # never get past the first.
        started.add(upstream)
        if len(started) == 3:
            everyone.set()
        with anyio.fail_after(5):
            await everyone.wait()
        return str(ABC[upstream])

    engine = engine_for(answer, ledger, council())
    decision, out = await engine.complete(ask("council"), request_id="r1")
    assert (out.card.id, out.completion.content) == ("small", "Answer: C")
    got = await records(ledger, "r1")
    assert sorted(rows(got)) == [
        ("frontier", 1, "member", "ok"),
        ("small", 1, "answer", "ok"),
        ("vision-mid", 1, "member", "ok"),
    ]
    assert {r.decision_id for r in got} == {decision.id}
    assert out.cost_usd == sum((r.cost_usd for r in got), Decimal(0)) > 0
    result = out.council
    assert result is not None
    assert (result.zone, result.method, result.review_id) == ("agreed", "vote", None)
    assert [(m.model_id, m.key) for m in result.members] == [
        ("small", "C"),
        ("vision-mid", "C"),
        ("frontier", "D"),
    ]
    by_model = {r.model_id: r.cost_usd for r in got}
    assert [m.cost_usd for m in result.members] == [by_model[m.model_id] for m in result.members]
    assert result.headers() == {"x-modelyard-agreement": "0.6667", "x-modelyard-zone": "agreed"}


async def test_a_failed_member_is_dropped_and_named_and_two_still_answer(
    ledger: InMemoryLedger,
) -> None:
    script = {**ABC, "frontier": ProviderServerError("boom", provider="bigco")}
    engine = engine_for(script, ledger, council())
    _, out = await engine.complete(ask("council"), request_id="r2")
    assert out.completion.content == "Answer: C"
    assert sorted(rows(await records(ledger, "r2"))) == [
        ("frontier", 1, "member", "error"),
        ("small", 1, "answer", "ok"),
        ("vision-mid", 1, "member", "ok"),
    ]
    assert out.council is not None
    frontier = out.council.members[2]
    assert (frontier.status, frontier.model_id) == ("failed", "frontier")
    assert "boom" in (frontier.error or "")
    assert "member frontier dropped: no candidate answered" in out.council.notes
    assert [f.model_id for f in out.failed] == ["frontier"]
    # Two of two answered agree: unanimous among those who answered.
    assert out.council.agreement == 1.0


async def test_a_member_falls_back_along_its_own_list(ledger: InMemoryLedger) -> None:
    script = {**ABC, "vision-mid": ProviderServerError("down", provider="cheapco")}
    script["local-llm"] = "Answer: C"
    members = ["small", {"model": "vision-mid", "fallback": ["local-llm"]}, "frontier"]
    engine = engine_for(script, ledger, council(members))
    _, out = await engine.complete(ask("council"), request_id="r3")
    assert out.council is not None
    assert [m.model_id for m in out.council.members] == ["small", "local-llm", "frontier"]
    statuses = {(r.model_id, r.status) for r in await records(ledger, "r3")}
    assert ("vision-mid", "error") in statuses
    assert ("local-llm", "ok") in statuses


async def test_members_that_all_fail_are_a_503_naming_each_and_every_call_is_billed(
    ledger: InMemoryLedger,
) -> None:
    script = {m: ProviderServerError(f"{m} is down", provider="x") for m in ABC}
    engine = engine_for(script, ledger, council())
    with pytest.raises(AllAttemptsFailedError) as caught:
        await engine.complete(ask("council"), request_id="r4")
    assert caught.value.http_status == 503
    for model in ABC:
        assert f"{model} is down" in caught.value.message
    got = await records(ledger, "r4")
    assert sorted(r.model_id for r in got) == sorted(ABC)
    assert all(r.status == "error" and r.role == "member" for r in got)


async def test_one_answer_is_not_a_council_and_it_is_still_billed(ledger: InMemoryLedger) -> None:
    script: dict[str, Any] = {m: ProviderServerError("down", provider="x") for m in ABC}
    script["small"] = "Answer: C"
    engine = engine_for(script, ledger, council())
    with pytest.raises(AllAttemptsFailedError, match="1 member\\(s\\) answered \\(small\\)"):
        await engine.complete(ask("council"), request_id="r5")
    small = [r for r in await records(ledger, "r5") if r.model_id == "small"]
    assert [(r.status, r.role) for r in small] == [("ok", "member")]
    assert small[0].cost_usd > 0


async def test_a_callers_own_error_ends_the_council(ledger: InMemoryLedger) -> None:
    script = {
        **ABC,
        "small": UpstreamRequestError("bad request", provider="cheapco", upstream_status=400),
    }
    engine = engine_for(script, ledger, council())
    with pytest.raises(UpstreamRequestError):
        await engine.complete(ask("council"), request_id="r6")
    got = await records(ledger, "r6")
    assert all(r.status != "started" for r in got)


async def test_a_disputed_vote_is_flagged_and_queued_for_review(ledger: InMemoryLedger) -> None:
    script = {"small": "Answer: A", "vision-mid": "Answer: B", "frontier": "I cannot tell."}
    engine = engine_for(script, ledger, council())
    _, out = await engine.complete(ask("council"), request_id="r7")
    result = out.council
    assert result is not None
    assert result.zone == "disputed"
    assert "frontier: no extractable final answer (agrees with nobody)" in result.notes
    assert result.review_id is not None
    assert result.headers()["x-modelyard-review"] == "pending"
    (review,) = await reviews_for(ledger).list(status="pending")
    assert review.id == result.review_id
    assert review.request_id == "r7"
    assert review.status == "pending"
    assert [m["answer"] for m in review.members] == list(script.values())
    assert review.answer == "Answer: A"
    assert review.cost_usd == out.cost_usd
    assert review.request["messages"][0]["content"] == "Which letter?"


async def test_free_text_councils_match_claims(ledger: InMemoryLedger) -> None:
    script = {
        "small": "Oslo is the capital of Norway. It is cold in winter.",
        "vision-mid": "Oslo is the capital of Norway. It is cold in winter.",
        "frontier": "Oslo is the capital of Norway. It has 700000 people.",
    }
    engine = engine_for(script, ledger, council(extract="text", matcher="tokens"))
    _, out = await engine.complete(ask("council"), request_id="r8")
    result = out.council
    assert result is not None
    assert result.method == "claims"
    served = result.to_json()["claims"]
    assert [c["supporting"] for c in served] == [
        ["small", "vision-mid", "frontier"],
        ["small", "vision-mid"],
    ]
    assert [c["zone"] for c in served] == ["agreed", "agreed"]


async def test_an_adjudicator_model_is_prompted_with_answers_and_cites_members(
    ledger: InMemoryLedger,
) -> None:
    seen: list[str] = []

    def answer(request: ChatRequest, upstream: str) -> Any:
        if is_adjudication(request):
            seen.append(str(request.messages[0].content))
            return Completion("adj", upstream, "The answer is C [1][2].", usage=USAGE[upstream])
        return ABC[upstream]

    members = ["small", "vision-mid", "local-llm"]
    script_engine = engine_for(
        lambda r, u: answer(r, u) if u != "local-llm" else "Answer: D",
        ledger,
        council(members, adjudicator="frontier"),
    )
    decision, out = await script_engine.complete(ask("council"), request_id="r9")
    assert (out.card.id, out.completion.content) == ("frontier", "The answer is C [1][2].")
    assert "[1] Answer: C" in seen[0]
    assert "[3] Answer: D" in seen[0]
    assert "final answer: C (supported by [1], [2]; contradicted by [3])" in seen[0]
    got = await records(ledger, "r9")
    assert sorted(rows(got)) == [
        ("frontier", 2, "adjudicator", "ok"),
        ("local-llm", 1, "member", "ok"),
        ("small", 1, "member", "ok"),
        ("vision-mid", 1, "member", "ok"),
    ]
    assert {r.decision_id for r in got} == {decision.id}
    assert out.cost_usd == sum((r.cost_usd for r in got), Decimal(0))
    assert out.council is not None
    assert out.council.cited == ("small", "vision-mid")
    assert out.council.adjudicated_by == "frontier"
    assert out.council.review_id is None


async def test_an_adjudicator_without_citations_is_served_linked_and_flagged(
    ledger: InMemoryLedger,
) -> None:
    def answer(request: ChatRequest, upstream: str) -> Any:
        return "The answer is C." if is_adjudication(request) else ABC[upstream]

    members = ["small", "vision-mid", "local-llm"]
    engine = engine_for(
        lambda r, u: answer(r, u) if u != "local-llm" else "Answer: C",
        ledger,
        council(members, adjudicator="frontier"),
    )
    _, out = await engine.complete(ask("council"), request_id="r10")
    result = out.council
    assert result is not None
    assert result.cited == ()
    assert "the adjudicator cited no member; claims linked by similarity" in result.notes
    assert result.zone == "agreed"
    assert result.review_id is not None
    (review,) = await reviews_for(ledger).list()
    assert review.reason.endswith("; the adjudicator cited no member")
    assert review.answer == "The answer is C."


async def test_an_adjudicator_that_fails_falls_back_to_the_vote(ledger: InMemoryLedger) -> None:
    def answer(request: ChatRequest, upstream: str) -> Any:
        if is_adjudication(request):
            return ProviderServerError("judge down", provider="bigco")
        return ABC[upstream]

    engine = engine_for(answer, ledger, council(["small", "vision-mid"], adjudicator="frontier"))
    _, out = await engine.complete(ask("council"), request_id="r11")
    assert out.completion.content == "Answer: C"
    assert out.council is not None
    assert any("adjudicator frontier failed" in n for n in out.council.notes)
    assert sorted(rows(await records(ledger, "r11"))) == [
        ("frontier", 2, "adjudicator", "error"),
        ("small", 1, "answer", "ok"),
        ("vision-mid", 1, "member", "ok"),
    ]


async def test_streaming_serves_the_adjudicated_answer_once_it_exists(
    ledger: InMemoryLedger,
) -> None:
    engine = engine_for(ABC, ledger, council())
    live = await engine.stream(ask("council", stream=True), request_id="r12")
    text = "".join([c.content or "" async for c in live])
    assert text == "Answer: C"
    assert live.council is not None
    assert live.council.zone == "agreed"
    got = await records(ledger, "r12")
    assert len(got) == 3
    assert all(r.status == "ok" for r in got)
    assert live.cost_usd == sum((r.cost_usd for r in got), Decimal(0))


async def test_cancelling_a_council_bills_running_members_cancelled(
    ledger: InMemoryLedger,
) -> None:
    async def answer(request: ChatRequest, upstream: str) -> Any:
        if upstream == "small":
            return Completion("c", upstream, "Answer: C", usage=Usage(100, 10))
        await anyio.sleep(60)
        return "too late"

    engine = engine_for(answer, ledger, council())
    with anyio.move_on_after(0.2):
        await engine.complete(ask("council"), request_id="r13")
    got = {r.model_id: r.status for r in await records(ledger, "r13")}
    # The answer received is billed cancelled with its real usage; the members still
    # running were abandoned and billed cancelled too.
    assert got == {"small": "cancelled", "vision-mid": "cancelled", "frontier": "cancelled"}


async def test_a_council_with_one_qualified_member_answers_by_a_single_route(
    ledger: InMemoryLedger,
) -> None:
    image = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
    ]
    engine = engine_for(ABC, ledger, council(["small", "vision-mid"]))
    request = ask("council", messages=[{"role": "user", "content": image}])
    decision, out = await engine.complete(request, request_id="r14")
    assert (decision.kind, out.card.id, out.council) == ("single", "vision-mid", None)
    assert any("council degraded to a single route" in n for n in decision.notes)
    assert rows(await records(ledger, "r14")) == [("vision-mid", None, None, "ok")]
