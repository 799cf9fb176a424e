"""Keeping a miss's answer in the response cache, once it is complete: a finished
call's outcome at once, a stream through a `LiveStream` tap when it completed normally
(never a cut, failed or abandoned one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from modelyard.attempt_types import CallContext, Outcome
from modelyard.cache.entry import STORED_FINISH, CachedAnswer, StoredUsage, StreamRecorder
from modelyard.cache.response_cache import Probe, ResponseCache
from modelyard.catalog.cards import ModelCard
from modelyard.catalog.tokens import count_text
from modelyard.errors import LowConfidenceError
from modelyard.live_stream import LiveStream
from modelyard.routing.plan import Decision
from modelyard.types import Chunk, Completion, Money, Usage

if TYPE_CHECKING:
    from modelyard.council.result import CouncilResult


def _keepable(last_resort: LowConfidenceError | None, council: CouncilResult | None) -> bool:
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
