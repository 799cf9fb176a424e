"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: parse, translate, hand to
the same Engine as chat completions, render in Anthropic's shape.

Routing hints come from `x-modelyard-*` headers (or a `modelyard` body object, the
SDKs' `extra_body`), and the routing headers come back as on chat completions, plus
Anthropic's `request-id`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from modelyard.catalog.tokens import estimate_prompt_tokens
from modelyard.errors import ModelyardError
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
from modelyard.server.messages.errors import new_request_id, sse_error
from modelyard.server.messages.render import message_json
from modelyard.server.messages.route_class import AnthropicRoute
from modelyard.server.messages.schema import CountTokensRequest, MessagesRequest
from modelyard.server.messages.stream import EventRenderer
from modelyard.server.messages.translate import to_chat_request
from modelyard.server.render import SafeJSONResponse
from modelyard.server.scrub import scrub
from modelyard.types import ChatRequest, money_text

router = APIRouter(route_class=AnthropicRoute)
# Only for counting: a count_tokens body has no max_tokens, and routing one needs none.
_COUNTING_MAX_TOKENS = 1


def _request_id(request: Request) -> str:
    request_id = request.headers.get("x-request-id") or new_request_id()
    request.state.request_id = request_id
    return request_id


@router.post("/v1/messages", response_model=None)
async def messages(body: MessagesRequest, request: Request) -> SafeJSONResponse | StreamingResponse:
    """Anthropic Messages; `model` may be auto, a policy, an alias or a model id."""
    engine = engine_of(request)
    request_id = _request_id(request)
    chat = with_header_hints(to_chat_request(body), request.headers)
    who = principal_of(request)
    if chat.stream:
        live = await cancel_on_disconnect(
            request, lambda: engine.stream(chat, request_id=request_id, principal=who)
        )
        extra = await budget_headers(engine, who, live.decision.budget_note)
        return _event_stream(live, request_id, extra)
    decision, outcome = await cancel_on_disconnect(
        request, lambda: engine.complete(chat, request_id=request_id, principal=who)
    )
    payload = message_json(outcome.completion, model=outcome.card.id, message_id=request_id)
    headers = routing_headers(
        outcome.card.id, decision.id, request_id, outcome.failed, outcome.last_resort
    )
    headers["request-id"] = request_id
    headers.update(outcome_headers(outcome))
    headers.update(await budget_headers(engine, who, decision.budget_note))
    return SafeJSONResponse(payload, headers=headers)


@router.post("/v1/messages/count_tokens")
async def count_tokens(body: CountTokensRequest, request: Request) -> SafeJSONResponse:
    """The prompt's input tokens, counted for the model the request would be routed to
    (the tokenizer family of that model); nothing is called and nothing is billed."""
    request_id = _request_id(request)
    chat = with_header_hints(
        to_chat_request(body, max_tokens=_COUNTING_MAX_TOKENS), request.headers
    )
    family = _family(request, chat)
    tokens = estimate_prompt_tokens(chat, family)
    return SafeJSONResponse({"input_tokens": tokens}, headers={"request-id": request_id})


def _family(request: Request, chat: ChatRequest) -> str:
    """The tokenizer family of the model `chat` names, or of its policy's first choice."""
    engine = engine_of(request)
    target = engine.router.resolve(chat)  # an unknown model: 404 like /v1/messages
    card = engine.catalog.resolve(target.name)
    if card is not None:
        return card.family
    try:
        return engine.route(chat).candidates[0].card.family
    except ModelyardError:
        # Nothing qualifies right now: the count is still useful, in the caller's terms.
        return "anthropic"


def _event_stream(live: LiveStream, request_id: str, extra: dict[str, str]) -> StreamingResponse:
    renderer = EventRenderer(
        request_id=request_id,
        model=live.card.id,
        input_tokens=live.decision.requirements.prompt_tokens,
    )
    headers = routing_headers(
        live.card.id, live.decision.id, request_id, live.failed, live.last_resort
    )
    headers["request-id"] = request_id
    headers["cache-control"] = "no-cache"
    headers.update(extra)
    if live.cache is not None:
        headers.update(live.cache.headers())
    if live.cascade is not None:
        headers.update(live.cascade.headers())
        if live.cost_usd is not None:
            headers["x-modelyard-cost-usd"] = money_text(live.cost_usd)
    if live.council is not None:
        headers.update(live.council.headers())
        headers["x-modelyard-cost-usd"] = money_text(live.council.cost_usd)
    return StreamingResponse(
        _events(live, renderer), media_type="text/event-stream", headers=headers
    )


async def _events(live: LiveStream, renderer: EventRenderer) -> AsyncIterator[str]:
    """The event sequence; a failure after the start ends it with an `error` event."""
    yield renderer.start()
    try:
        async for chunk in live:
            cost = None
            if chunk.usage is not None:
                # The request's total: this attempt plus any escalated before it.
                cost = live.prior_cost + (
                    chunk.usage.cost_usd
                    if chunk.usage.cost_usd is not None
                    else live.card.prices.cost(chunk.usage)
                )
                if live.cascade is not None and live.cost_usd is not None:
                    cost = live.cost_usd  # a held-back cascade: every hop
            for event in renderer.events(chunk, cost):
                yield event
    except ModelyardError as exc:
        yield sse_error(exc, f"stream interrupted after partial output: {scrub(exc.message)}")
        return
    for event in renderer.end():
        yield event
