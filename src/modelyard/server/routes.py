"""Thin HTTP routes: parse, hand to the Engine, render. No routing logic lives here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from modelyard.catalog.cards import ModelCard
from modelyard.engine import Engine
from modelyard.errors import (
    ClientClosedError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelyardError,
)
from modelyard.keys import Principal
from modelyard.live_stream import LiveStream
from modelyard.routing.requirements import hints_from_headers
from modelyard.server.guard import GuardedRoute
from modelyard.server.render import SafeJSONResponse
from modelyard.server.scrub import scrub
from modelyard.server.wire import (
    ChunkRenderer,
    chat_id,
    completion_json,
    low_confidence_header,
)
from modelyard.types import ChatRequest, money_text

router = APIRouter(route_class=GuardedRoute)
_T = TypeVar("_T")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _with_header_hints(body: ChatRequest, headers: Mapping[str, str]) -> ChatRequest:
    try:
        hints = hints_from_headers(headers, body.modelyard)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise InvalidRequestError(
            f"invalid x-modelyard-{str(err['loc'][0]).replace('_', '-')} header: {err['msg']}"
        ) from None
    return body.model_copy(update={"modelyard": hints})


def _principal(request: Request) -> Principal | None:
    who: Principal | None = getattr(request.state, "principal", None)
    return who


async def _budget_headers(
    engine: Engine, who: Principal | None, note: str | None
) -> dict[str, str]:
    """What is left of the tightest budget, and why the call was downgraded."""
    headers: dict[str, str] = {}
    if note:
        headers["x-modelyard-budget-note"] = note
    if engine.gate is not None and who is not None:
        try:
            left = await engine.gate.remaining_usd(who)
        except ModelyardError:
            # The answer is served and billed: a header is not worth losing it.
            left = None
        if left is not None:
            headers["x-modelyard-budget-remaining-usd"] = f"{left:.6f}"
    return headers


def _routing_headers(
    model: str, decision_id: str, request_id: str, failed: Any, last_resort: Any = None
) -> dict[str, str]:
    headers = {
        "x-modelyard-model": model,
        "x-modelyard-decision": decision_id,
        "x-request-id": request_id,
    }
    if failed:
        headers["x-modelyard-failed-attempts"] = ",".join(
            f"{f.model_id}:{type(f.error).__name__}" for f in failed
        )
    if last_resort is not None:
        # A low-confidence answer returned because nothing was left to escalate to
        # must not look like a confident one.
        headers["x-modelyard-low-confidence"] = low_confidence_header(last_resort)
    return headers


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest, request: Request
) -> SafeJSONResponse | StreamingResponse:
    """OpenAI chat completions; `model` may be auto, a policy, an alias or a model id."""
    engine = _engine(request)
    chat = _with_header_hints(body, request.headers)
    request_id = request.headers.get("x-request-id") or engine.ids()
    # For the 500 handler's log line: our own bugs are reported with the request id.
    request.state.request_id = request_id
    who = _principal(request)
    if chat.stream:
        # A council (or a held-back cascade) works before its first byte: a client
        # gone meanwhile cancels the members still running.
        live = await _cancel_on_disconnect(
            request, lambda: engine.stream(chat, request_id=request_id, principal=who)
        )
        extra = await _budget_headers(engine, who, live.decision.budget_note)
        return _sse_response(live, chat, request_id, extra)
    decision, outcome = await _cancel_on_disconnect(
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
    headers = _routing_headers(
        outcome.card.id, decision.id, request_id, outcome.failed, outcome.last_resort
    )
    # The request's total: every hop, verifier call, member and escalated attempt.
    headers["x-modelyard-cost-usd"] = money_text(outcome.cost_usd)
    headers.update(await _budget_headers(engine, who, decision.budget_note))
    if outcome.cache is not None:
        headers.update(outcome.cache.headers())
    if outcome.cascade is not None:
        headers.update(outcome.cascade.headers())
    if outcome.council is not None:
        payload.setdefault("modelyard", {})["council"] = outcome.council.to_json()
        headers.update(outcome.council.headers())
    return SafeJSONResponse(payload, headers=headers)


async def _cancel_on_disconnect(request: Request, work: Callable[[], Awaitable[_T]]) -> _T:
    """Run `work`, cancelling it if the client disconnects first: the upstream call is
    abandoned (and its attempt billed as cancelled) instead of running on for nobody.

    `work` runs in this task under a cancel scope; one plain asyncio task waits for
    the disconnect and cancels the scope. (A task group here cost two tasks and its
    own scope per request: 2-4 % of the gateway's CPU.)"""
    with anyio.CancelScope() as scope:
        watcher = asyncio.get_running_loop().create_task(_watch(request, scope))
        try:
            result = await work()
        finally:
            watcher.cancel()
    if scope.cancelled_caught:
        raise ClientClosedError("the client closed the connection before the answer was ready")
    return result


async def _watch(request: Request, scope: anyio.CancelScope) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


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
    headers = _routing_headers(
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
    engine = _engine(request)
    chat = _with_header_hints(body, request.headers)
    try:
        who = _principal(request)
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
    engine = _engine(request)
    data = [_card_entry(engine, card) for card in engine.catalog.cards.values()]
    data.extend(_name_entry(name) for name in (*engine.router.policies, *engine.catalog.aliases))
    return {"object": "list", "data": data}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request) -> dict[str, Any]:
    """One model (OpenAI's retrieve): a card, a policy or an alias; else a 404."""
    engine = _engine(request)
    card = engine.catalog.cards.get(model_id)
    if card is not None:
        return _card_entry(engine, card)
    if model_id in engine.router.policies or model_id in engine.catalog.aliases:
        return _name_entry(model_id)
    raise ModelNotFoundError(f"The model '{model_id[:200]}' does not exist", param="model")


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    catalog = _engine(request).catalog
    deployments = {c.deployment.name for c in catalog.cards.values()}
    gate = _engine(request).gate
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
