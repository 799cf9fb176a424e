"""`GET /metrics`: Prometheus text format.

Open on a loopback bind while no API key exists. Once keys exist (or the gateway
binds a non-loopback address) it needs `Authorization: Bearer` with the admin key
(`MODELYARD_ADMIN_KEY`) or the metrics token (`MODELYARD_METRICS_TOKEN`, for a
scraper that should not hold the admin key). Both are kept as SHA-256 digests and
compared in constant time; both digests are always compared, so the time taken
does not say which one matched.
"""

from __future__ import annotations

import hmac

import anyio
from fastapi import APIRouter, Request, Response

from modelyard.errors import AuthenticationError, PermissionDeniedError
from modelyard.keys import hash_key
from modelyard.observability.exposition import render
from modelyard.observability.gauges import GaugeSampler
from modelyard.server.auth import Authenticator

router = APIRouter(include_in_schema=False)


async def require_metrics_access(request: Request) -> None:
    """Nothing while `/metrics` is open (see the module docstring); else 401/403."""
    state = request.app.state
    auth: Authenticator = state.auth
    if not (state.require_auth or await auth.required()):
        return
    expected = [d for d in (state.metrics_token_hash, state.admin_key_hash) if d is not None]
    if not expected:
        raise PermissionDeniedError(
            "/metrics needs a token once API keys exist or off loopback: set "
            "MODELYARD_METRICS_TOKEN (or MODELYARD_ADMIN_KEY)"
        )
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError(
            "missing metrics token: send 'Authorization: Bearer <MODELYARD_METRICS_TOKEN>'"
        )
    digest = hash_key(secret.strip())
    matches = [hmac.compare_digest(digest, e) for e in expected]
    if not any(matches):
        raise AuthenticationError("invalid metrics token")


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    await require_metrics_access(request)
    sampler: GaugeSampler = request.app.state.gauges
    await sampler.sample()
    body, content_type = await anyio.to_thread.run_sync(render)
    return Response(body, media_type=content_type)
