"""The response cache at the Engine: serving a hit as a completion or a stream, with
its ledger record, and keeping a miss's answer once it is complete.

Living at the Engine (not in an HTTP route), it serves every front door that calls
`Engine.complete` / `Engine.stream`. A hit is one ledger record with status
`cached`, cost 0 and no provider tokens, naming the model whose answer it was; its
reasons carry the cache key, when and by which request the answer was bought, and
what that cost (what the hit saved).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio

from modelyard.attempt_types import Attempt, CallContext, Outcome
from modelyard.cache.entry import STORED_FINISH, CachedAnswer, StoredUsage, StreamRecorder
from modelyard.cache.key import data_class_of
from modelyard.cache.response_cache import Probe, ResponseCache
from modelyard.catalog.cards import ModelCard
from modelyard.catalog.catalog import Catalog
from modelyard.catalog.tokens import count_text
from modelyard.keys import Principal
from modelyard.ledger.records import CACHED_STATUS, CallRecord
from modelyard.live_stream import LiveStream, no_more_chunks
from modelyard.routing.plan import Decision, RankedCandidate, Score
from modelyard.routing.requirements import infer_capabilities
from modelyard.types import ChatRequest, Chunk, Completion, Money, Requirements, Usage

if TYPE_CHECKING:
    from modelyard.executor import Executor

SCORER_VERSION = "cache"


def unusable(catalog: Catalog, principal: Principal | None) -> Callable[[CachedAnswer], str | None]:
    """Why a found answer can no longer be served: its model left the catalog (a
    config reload, or a restart with Redis), or the key may not use it any more."""

    def check(answer: CachedAnswer) -> str | None:
        if answer.model_id not in catalog.cards:
            return f"model '{answer.model_id}' is no longer in the catalog"
        key = principal.key if principal is not None else None
        if key is not None and not key.allows_model(answer.model_id):
            return f"key '{key.name}' may no longer use model '{answer.model_id}'"
        return None

    return check


def hit_decision(decision_id: str, answer: CachedAnswer, request: ChatRequest) -> Decision:
    """What the ledger and the response say was decided: no routing, the cached answer."""
    hints = request.modelyard
    requirements = Requirements(
        capabilities=infer_capabilities(request),
        prompt_tokens=answer.usage.input_tokens,
        max_output_tokens=request.output_limit,
        data_class=data_class_of(request),
        max_cost_usd=hints.max_cost_usd,
        max_latency_ms=hints.max_latency_ms,
        task=hints.task,
    )
    note = (
        f"served from the response cache: the answer {answer.model_id} gave to request "
        f"{answer.request_id} at {answer.stored_at.isoformat()}"
    )
    return Decision(
        id=decision_id,
        policy=answer.policy,
        kind="single",
        candidates=(),
        rejected=(),
        requirements=requirements,
        scorer_version=SCORER_VERSION,
        notes=(note,),
    )


def _cache_reasons(probe: Probe, answer: CachedAnswer) -> dict[str, Any]:
    return {
        "key": probe.key,
        "stored_at": answer.stored_at.isoformat(),
        "source_request_id": answer.request_id,
        "source_decision_id": answer.decision_id,
        "saved_usd": str(answer.cost_usd),
        "input_tokens": answer.usage.input_tokens,
        "output_tokens": answer.usage.output_tokens,
    }


async def record_hit(
    ex: Executor,
    decision: Decision,
    ctx: CallContext,
    attempt: Attempt,
    probe: Probe,
    answer: CachedAnswer,
    *,
    streamed: bool,
) -> None:
    """The hit's ledger record (`cached`, cost 0), committed before the answer goes out."""
    card = attempt.candidate.card
    who = ctx.principal
    record = CallRecord(
        id=ex.ids(),
        request_id=ctx.request_id,
        decision_id=decision.id,
        policy=decision.policy,
        model_id=card.id,
        deployment=card.deployment.name,
        upstream_model=card.upstream,
        attempt=attempt.number,
        started_at=attempt.started_at,
        latency_ms=(ex.monotonic() - attempt.t0) * 1000,
        status=CACHED_STATUS,
        cost_usd=Decimal(0),
        streamed=streamed,
        caller=ctx.caller,
        reasons={**decision.explain(), "cache": _cache_reasons(probe, answer)},
        confidence=answer.confidence,
        key_id=who.key_id if who else None,
        team=who.team if who else None,
        tags=",".join(who.tags) if who and who.tags else None,
    )
    with anyio.CancelScope(shield=True):
        await ex.ledger.write(record)


def _attempt(ex: Executor, card: ModelCard, started_at: datetime, t0: float) -> Attempt:
    candidate = RankedCandidate(card, Score(0.0, Decimal(0), 0.0), 1, "cached answer")
    return Attempt(candidate, 1, started_at, t0)


async def serve_outcome(
    ex: Executor, catalog: Catalog, decision: Decision, ctx: CallContext, probe: Probe, t0: float
) -> Outcome:
    """A hit as a finished call."""
    answer = _answer(probe)
    attempt = _attempt(ex, catalog.cards[answer.model_id], ex.clock(), t0)
    await record_hit(ex, decision, ctx, attempt, probe, answer, streamed=False)
    completion = answer.completion(f"cache-{ctx.request_id}")
    card = attempt.candidate.card
    return Outcome(completion, card, Money(0), (), cache=probe.note)


async def serve_stream(
    ex: Executor,
    catalog: Catalog,
    decision: Decision,
    ctx: CallContext,
    probe: Probe,
    t0: float,
    request: ChatRequest,
) -> LiveStream:
    """A hit replayed as a stream (content, tool calls, finish, usage), already billed at 0."""
    answer = _answer(probe)
    attempt = _attempt(ex, catalog.cards[answer.model_id], ex.clock(), t0)
    await record_hit(ex, decision, ctx, attempt, probe, answer, streamed=True)
    live = LiveStream(
        ex,
        decision,
        ctx,
        attempt,
        answer.chunks(),
        no_more_chunks(),
        (),
        request=request,
        billed_cost=Money(0),
    )
    live.cache = probe.note
    return live


def _answer(probe: Probe) -> CachedAnswer:
    if probe.answer is None:
        raise ValueError("not a cache hit")
    return probe.answer


def _keepable(last_resort: object, council: Any) -> bool:
    """A specialist's low-confidence last resort or a council answer sent to review
    is served once, never repeated from the cache."""
    return last_resort is None and not (council is not None and council.needs_review)


async def keep_outcome(
    cache: ResponseCache,
    probe: Probe,
    decision: Decision,
    ctx: CallContext,
    outcome: Outcome,
    now: datetime,
) -> Outcome:
    """Store a miss's answer (when it may be kept); the outcome with the cache's verdict."""
    c = outcome.completion
    if _keepable(outcome.last_resort, outcome.council):
        answer = _cached(decision, ctx, outcome.card, c, outcome.cost_usd, now)
        if answer is not None:
            await cache.store(probe, answer)
    return replace(outcome, cache=probe.note)


def _cached(
    decision: Decision,
    ctx: CallContext,
    card: ModelCard,
    completion: Completion,
    cost: Money,
    now: datetime,
) -> CachedAnswer | None:
    if completion.finish_reason not in STORED_FINISH:
        return None
    u = completion.usage
    return CachedAnswer(
        model_id=card.id,
        policy=decision.policy,
        content=completion.content,
        tool_calls=completion.tool_calls,
        finish_reason=completion.finish_reason,
        usage=StoredUsage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cached_input_tokens=u.cached_input_tokens,
        ),
        cost_usd=max(cost, Decimal(0)),
        confidence=completion.confidence,
        stored_at=now,
        request_id=ctx.request_id,
        decision_id=decision.id,
    )


class StreamKeeper:
    """A `LiveStream` tap on a miss: rebuilds the answer from its chunks and stores
    it when the stream completed normally (never a cut, failed or abandoned one)."""

    def __init__(
        self, cache: ResponseCache, probe: Probe, ctx: CallContext, clock: Callable[[], datetime]
    ) -> None:
        self.cache = cache
        self.probe = probe
        self.ctx = ctx
        self.clock = clock
        self.recorder = StreamRecorder()

    def see(self, chunk: Chunk) -> None:
        self.recorder.see(chunk)

    async def completed(self, live: LiveStream) -> None:
        rec = self.recorder
        calls = rec.tool_calls()
        # A stream that never said how it finished did not complete normally.
        if (
            calls is None
            or rec.finish_reason is None
            or not _keepable(live.last_resort, live.council)
        ):
            return
        text = "".join(rec.text)
        usage = rec.usage or live.usage
        if usage is None:  # no usage reported: the prompt estimate and what streamed
            usage = Usage(live.decision.requirements.prompt_tokens, count_text(text))
        cost = live.council.cost_usd if live.council is not None else (live.cost_usd or Money(0))
        if live.council is None and live.cascade is None:
            cost += live.prior_cost
        completion = Completion(
            id="",
            model=live.card.id,
            content=text if text or not calls else None,
            tool_calls=calls,
            finish_reason=rec.finish_reason,
            usage=usage,
            confidence=rec.confidence,
        )
        answer = _cached(live.decision, self.ctx, live.card, completion, cost, self.clock())
        if answer is not None:
            await self.cache.store(self.probe, answer)
