"""Serving a cache hit at the Engine, as a completion or a stream, with its ledger record.

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
from modelyard.cache.entry import CachedAnswer
from modelyard.cache.key import data_class_of
from modelyard.cache.response_cache import Probe
from modelyard.catalog.cards import ModelCard
from modelyard.catalog.catalog import Catalog
from modelyard.keys import Principal
from modelyard.ledger.records import CACHED_STATUS
from modelyard.live_stream import LiveStream, no_more_chunks
from modelyard.routing.plan import Decision, RankedCandidate, Score
from modelyard.routing.requirements import infer_capabilities
from modelyard.types import ChatRequest, Money, Requirements, Usage

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
    free = Usage(cost_usd=Decimal(0))
    base = ex.record_of(decision, ctx, attempt, free, CACHED_STATUS, None, answer.confidence)
    cache = _cache_reasons(probe, answer)
    record = replace(base, streamed=streamed, reasons={**base.reasons, "cache": cache})
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
