"""What every front door's routes share (OpenAI chat, Anthropic Messages, embeddings):
the engine and caller of a request, routing hints from headers, the routing and
budget headers of an answer, and cancelling the work when the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
from fastapi import Request
from pydantic import ValidationError

from modelyard.engine import Engine
from modelyard.errors import ClientClosedError, InvalidRequestError, ModelyardError
from modelyard.executor import Outcome
from modelyard.keys import Principal
from modelyard.routing.requirements import hints_from_headers
from modelyard.server.wire import low_confidence_header
from modelyard.types import ChatRequest, money_text

_T = TypeVar("_T")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def with_header_hints(body: ChatRequest, headers: Mapping[str, str]) -> ChatRequest:
    try:
        hints = hints_from_headers(headers, body.modelyard)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise InvalidRequestError(
            f"invalid x-modelyard-{str(err['loc'][0]).replace('_', '-')} header: {err['msg']}"
        ) from None
    return body.model_copy(update={"modelyard": hints})


def principal_of(request: Request) -> Principal | None:
    who: Principal | None = getattr(request.state, "principal", None)
    return who


async def budget_headers(engine: Engine, who: Principal | None, note: str | None) -> dict[str, str]:
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


def routing_headers(
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


async def cancel_on_disconnect(request: Request, work: Callable[[], Awaitable[_T]]) -> _T:
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


def outcome_headers(outcome: Outcome) -> dict[str, str]:
    """An answer's own headers: what the whole request cost (every hop, verifier
    call, member and escalated attempt), and the cache, cascade and council verdicts."""
    headers = {"x-modelyard-cost-usd": money_text(outcome.cost_usd)}
    for part in (outcome.cache, outcome.cascade, outcome.council):
        if part is not None:
            headers.update(part.headers())
    return headers
