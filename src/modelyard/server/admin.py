"""`/admin/*`: a small HTTP API to manage keys and budgets, for `MODELYARD_ADMIN_KEY`.

Disabled (403) when that variable is not set. The admin key is compared as a
SHA-256 digest in constant time; it is never stored or logged.
"""

from __future__ import annotations

import hmac
import statistics
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.admin import KeySpec, create_key, describe, describe_budget, set_budget
from modelyard.budgets.gate import BudgetGate
from modelyard.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
)
from modelyard.keys import KeyStore, hash_key


def require_admin(request: Request) -> None:
    """401/403 unless the request carries the admin key."""
    expected: str | None = getattr(request.app.state, "admin_key_hash", None)
    if expected is None:
        raise PermissionDeniedError("the admin API is disabled: set MODELYARD_ADMIN_KEY")
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise AuthenticationError("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not hmac.compare_digest(hash_key(secret.strip()), expected):
        raise AuthenticationError("invalid admin key")


# Not in the public OpenAPI schema: an operator API, documented in the README.
router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], include_in_schema=False)


def _store(request: Request) -> KeyStore:
    store: KeyStore | None = getattr(request.app.state, "keys", None)
    if store is None:
        raise InvalidRequestError("keys are not available (the ledger is not open)")
    return store


class KeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    team: str | None = Field(default=None, max_length=64)
    budget: str | None = Field(default=None, max_length=64)
    on_exhaust: str = "downgrade"
    rpm: int | None = None
    tpm: int | None = None
    models: list[str] = Field(default_factory=list, max_length=64)
    policies: list[str] = Field(default_factory=list, max_length=64)
    max_data_class: str | None = None
    expires_days: float | None = None


class BudgetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: str
    subject: str | None = Field(default=None, max_length=64)
    budget: str = Field(max_length=64)
    on_exhaust: str = "downgrade"


def _bad(exc: ValueError) -> InvalidRequestError:
    return InvalidRequestError(str(exc))


@router.post("/keys")
async def create(body: KeyBody, request: Request) -> dict[str, Any]:
    """Create a key; the response holds the key itself, once."""
    on_exhaust = "refuse" if body.on_exhaust == "refuse" else "downgrade"
    spec = KeySpec(**{**body.model_dump(), "on_exhaust": on_exhaust})
    try:
        secret, key = await create_key(_store(request), spec)
    except ValueError as exc:
        raise _bad(exc) from None
    _invalidate(request)
    return {"key": secret, **describe(key)}


@router.get("/keys")
async def list_keys(request: Request) -> dict[str, Any]:
    return {"data": [describe(k) for k in await _store(request).all()]}


@router.get("/keys/{name}")
async def show(name: str, request: Request) -> dict[str, Any]:
    key = await _store(request).by_name(name)
    if key is None:
        raise ModelNotFoundError(f"no key named '{name[:64]}'")
    return describe(key)


@router.post("/keys/{name}/revoke")
async def revoke(name: str, request: Request) -> dict[str, Any]:
    try:
        key = await _store(request).revoke(name, datetime.now(UTC))
    except ValueError as exc:
        raise _bad(exc) from None
    return {"revoked": key.name}


@router.post("/keys/{name}/rotate")
async def rotate(name: str, request: Request) -> dict[str, Any]:
    try:
        secret, key = await _store(request).rotate(name)
    except ValueError as exc:
        raise _bad(exc) from None
    return {"key": secret, **describe(key)}


@router.get("/budgets")
async def list_budgets(request: Request) -> dict[str, Any]:
    return {"data": [describe_budget(b) for b in await _store(request).budgets()]}


@router.put("/budgets")
async def put_budget(body: BudgetBody, request: Request) -> dict[str, Any]:
    try:
        budget = await set_budget(
            _store(request), body.scope, body.subject, body.budget, body.on_exhaust
        )
    except ValueError as exc:
        raise _bad(exc) from None
    _invalidate(request)
    return describe_budget(budget)


@router.get("/budgets/status")
async def status(request: Request) -> dict[str, Any]:
    """Open reservations and the gate's own latency (p50/p99, ms)."""
    gate: BudgetGate | None = request.app.state.engine.gate
    if gate is None:
        return {"enabled": False}
    timings = sorted(gate.timings)
    q = statistics.quantiles(timings, n=100) if len(timings) >= 2 else [0.0] * 99
    return {
        "enabled": True,
        "open_reservations": await gate.open_reservations(),
        "samples": len(timings),
        "p50_ms": round(q[49] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
        **gate.health(),
    }


def _invalidate(request: Request) -> None:
    gate: BudgetGate | None = request.app.state.engine.gate
    if gate is not None:
        gate.invalidate()
    auth = getattr(request.app.state, "auth", None)
    if auth is not None:
        auth._count = (-1e9, 0)
