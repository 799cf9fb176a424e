"""`POST /v1/embeddings`: OpenAI's embeddings wire format, routed through the Engine.

The response is OpenAI's `{"object": "list", "data": [...], "model", "usage"}`, each
vector as JSON floats or, with `encoding_format: base64`, little-endian float32 in
base64 (what the openai SDK asks for by default); plus a `modelyard` block and the
same routing and cost headers as chat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from modelyard.embed.request import EmbeddingRequest
from modelyard.embed.result import EmbeddingOutcome, Vector, to_base64
from modelyard.errors import InvalidRequestError
from modelyard.routing.requirements import hints_from_headers
from modelyard.server.common import (
    budget_headers,
    cancel_on_disconnect,
    engine_of,
    principal_of,
    routing_headers,
)
from modelyard.server.guard import GuardedRoute
from modelyard.server.render import SafeJSONResponse
from modelyard.server.wire import attempts_json
from modelyard.types import money_text

router = APIRouter(route_class=GuardedRoute)


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> SafeJSONResponse:
    """OpenAI embeddings; `model` may be auto, a policy, an alias or a model id."""
    engine = engine_of(request)
    try:
        hints = hints_from_headers(request.headers, body.modelyard)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise InvalidRequestError(
            f"invalid x-modelyard-{str(err['loc'][0]).replace('_', '-')} header: {err['msg']}"
        ) from None
    call = body.model_copy(update={"modelyard": hints})
    request_id = request.headers.get("x-request-id") or engine.ids()
    request.state.request_id = request_id
    who = principal_of(request)
    decision, outcome = await cancel_on_disconnect(
        request, lambda: engine.embed(call, request_id=request_id, principal=who)
    )
    payload = embeddings_json(outcome, base64=call.encoding_format == "base64")
    payload["modelyard"] = {
        "decision_id": decision.id,
        "cost_usd": money_text(outcome.cost_usd),
        "failed_attempts": attempts_json(outcome.failed),
    }
    headers = routing_headers(outcome.card.id, decision.id, request_id, outcome.failed)
    headers["x-modelyard-cost-usd"] = money_text(outcome.cost_usd)
    headers.update(await budget_headers(engine, who, decision.budget_note))
    return SafeJSONResponse(payload, headers=headers)


def embeddings_json(outcome: EmbeddingOutcome, *, base64: bool) -> dict[str, Any]:
    """OpenAI's `CreateEmbeddingResponse` for `outcome`."""
    render: Callable[[Vector], Any] = to_base64 if base64 else Vector.tolist
    tokens = outcome.result.usage.input_tokens if outcome.result.usage else 0
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": render(vector)}
            for index, vector in enumerate(outcome.result.vectors)
        ],
        "model": outcome.card.id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
