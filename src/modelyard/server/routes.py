"""Thin HTTP routes: parse, hand to the Engine, render. No routing logic lives here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from modelyard.catalog.cards import ModelCard
from modelyard.engine import Engine
from modelyard.errors import (
    ModelNotFoundError,
    ModelyardError,
)
from modelyard.live_stream import LiveStream
from modelyard.server.common import (
    budget_headers,
    cancel_on_disconnect,
    engine_of,
    outcome_headers,
    principal_of,
    routing_headers,
    with_header_hints,
)
from modelyard.server.guard import GuardedRoute
from modelyard.server.render import SafeJSONResponse
from modelyard.server.scrub import scrub
from modelyard.server.wire import (
    ChunkRenderer,
    chat_id,
    completion_json,
)
from modelyard.types import ChatRequest

router = APIRouter(route_class=GuardedRoute)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest, request: Request
) -> SafeJSONResponse | StreamingResponse:
    """OpenAI chat completions; `model` may be auto, a policy, an alias or a model id."""
    engine = engine_of(request)
    chat = with_header_hints(body, request.headers)
    request_id = request.headers.get("x-request-id") or engine.ids()
    # For the 500 handler's log line: our own bugs are reported with the request id.
    request.state.request_id = request_id
    who = principal_of(request)
    if chat.stream:
        # A council (or a held-back cascade) works before its first byte: a client
        # gone meanwhile cancels the members still running.
        live = await cancel_on_disconnect(
            request, lambda: engine.stream(chat, request_id=request_id, principal=who)
        )
        extra = await budget_headers(engine, who, live.decision.budget_note)
        return _sse_response(live, chat, request_id, extra)
    decision, outcome = await cancel_on_disconnect(
        request, lambda: engine.complete(chat, request_id=request_id, principal=who)
    )
    payload = completion_json(
        outcome.completion,
        model=outcome.card.id,
        created=int(time.time()),
        decision_id=decision.id,
        cost_usd=outcome.cost_usd,
        failed=outcome.failed,
        last_resort=outcome.last_resort,
    )
    headers = routing_headers(
        outcome.card.id, decision.id, request_id, outcome.failed, outcome.last_resort
    )
    headers.update(outcome_headers(outcome))
    headers.update(await budget_headers(engine, who, decision.budget_note))
    if outcome.council is not None:
        payload.setdefault("modelyard", {})["council"] = outcome.council.to_json()
    return SafeJSONResponse(payload, headers=headers)


def _sse_response(
    live: LiveStream, chat: ChatRequest, request_id: str, extra: dict[str, str]
) -> StreamingResponse:
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    renderer = ChunkRenderer(
        stream_id=chat_id(request_id),
        model=live.card.id,
        created=int(time.time()),
        include_usage=include_usage,
    )
    headers = routing_headers(
        live.card.id, live.decision.id, request_id, live.failed, live.last_resort
    )
    headers["cache-control"] = "no-cache"
    headers.update(extra)
    if live.cache is not None:
        headers.update(live.cache.headers())
    if live.cascade is not None:
        headers.update(live.cascade.headers())
        if live.cost_usd is not None:  # held back until accepted: every hop is billed
            headers["x-modelyard-cost-usd"] = str(live.cost_usd)
    if live.council is not None:
        headers.update(live.council.headers())
        headers["x-modelyard-cost-usd"] = str(live.council.cost_usd)
    return StreamingResponse(_sse(live, renderer), media_type="text/event-stream", headers=headers)


async def _sse(live: LiveStream, renderer: ChunkRenderer) -> AsyncIterator[str]:
    """Chunks as SSE; a failure after content ends the stream with an error event."""
    try:
        async for chunk in live:
            cost = None
            if chunk.usage:
                # The request's total: this attempt plus any escalated before it.
                cost = live.prior_cost + (
                    chunk.usage.cost_usd
                    if chunk.usage.cost_usd is not None
                    else live.card.prices.cost(chunk.usage)
                )
            if cost is not None and live.cascade is not None and live.cost_usd is not None:
                cost = live.cost_usd  # a held-back cascade: what the caller pays, every hop
            for event in renderer.events(chunk, cost):
                yield event
    except ModelyardError as exc:
        body = exc.to_openai()
        body["error"]["message"] = f"stream interrupted after partial output: {scrub(exc.message)}"
        yield renderer.error(body)
        return
    yield renderer.done()


@router.post("/v1/route")
async def route(body: ChatRequest, request: Request) -> dict[str, Any]:
    """Dry run: the decision and its reasons, or the error the request would get."""
    engine = engine_of(request)
    chat = with_header_hints(body, request.headers)
    try:
        who = principal_of(request)
        allowance = None
        if engine.gate is not None and who is not None:
            allowance = await engine.gate.allowance(who)
        decision = engine.route(chat, allowance)
    except ModelyardError as exc:
        if exc.http_status == 404:
            raise
        return {"outcome": "error", "status": exc.http_status, **exc.to_openai()}
    return {"outcome": "routed", "decision": decision.explain()}


def _card_entry(engine: Engine, card: ModelCard) -> dict[str, Any]:
    catalog = engine.catalog
    return {
        "id": card.id,
        "object": "model",
        "created": 0,
        "owned_by": card.deployment.name,
        "modelyard": {
            "available": catalog.is_available(card),
            "unavailable_reason": catalog.unavailable.get(card.deployment.name),
            "capabilities": sorted(c.value for c in card.capabilities),
            "context_window": card.context_window,
            "max_output_tokens": card.max_output_tokens,
            "prices_per_mtok": {
                "input": str(card.prices.input),
                "output": str(card.prices.output),
                "cached_input": str(card.prices.cached_input),
                "source": card.prices.source,
            },
        },
    }


def _name_entry(name: str) -> dict[str, Any]:
    """A policy or an alias: a model name a caller may send, owned by modelyard."""
    return {"id": name, "object": "model", "created": 0, "owned_by": "modelyard"}


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    """The catalog in OpenAI's list format, with modelyard's card facts attached."""
    engine = engine_of(request)
    data = [_card_entry(engine, card) for card in engine.catalog.cards.values()]
    data.extend(_name_entry(name) for name in (*engine.router.policies, *engine.catalog.aliases))
    return {"object": "list", "data": data}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request) -> dict[str, Any]:
    """One model (OpenAI's retrieve): a card, a policy or an alias; else a 404."""
    engine = engine_of(request)
    card = engine.catalog.cards.get(model_id)
    if card is not None:
        return _card_entry(engine, card)
    if model_id in engine.router.policies or model_id in engine.catalog.aliases:
        return _name_entry(model_id)
    raise ModelNotFoundError(f"The model '{model_id[:200]}' does not exist", param="model")


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    catalog = engine_of(request).catalog
    deployments = {c.deployment.name for c in catalog.cards.values()}
    gate = engine_of(request).gate
    return {
        "status": "ok" if gate is None or gate.degraded is None else "degraded",
        **({"budgets": gate.health()} if gate is not None else {}),
        "providers": {
            name: {
                "enabled": name not in catalog.unavailable,
                "reason": catalog.unavailable.get(name),
            }
            for name in sorted(deployments)
        },
    }
