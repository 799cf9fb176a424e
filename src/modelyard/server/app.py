"""The ASGI application: `create_app(engine)` plus a lifespan that owns resources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio.to_thread
from fastapi import FastAPI

from modelyard.catalog.tokens import warm_tokenizer
from modelyard.config import DEFAULT_MAX_IN_FLIGHT
from modelyard.dashboard.routes import install_dashboard
from modelyard.engine import Engine
from modelyard.keys import hash_key
from modelyard.observability.gauges import GaugeSampler
from modelyard.observability.hooks import Fanout, Telemetry
from modelyard.observability.lifecycle import metrics_lifespan
from modelyard.observability.prometheus_tap import PrometheusTelemetry
from modelyard.server.admin import router as admin_router
from modelyard.server.auth import Authenticator, KeyAuth
from modelyard.server.embeddings import router as embeddings_router
from modelyard.server.errors import install_error_handlers
from modelyard.server.front import DEFAULT_MAX_BODY_BYTES, FrontDoor
from modelyard.server.guard import HeaderGuard
from modelyard.server.messages.routes import router as messages_router
from modelyard.server.metrics import router as metrics_router
from modelyard.server.reviews import router as reviews_router
from modelyard.server.routes import router
from modelyard.server.scrub import remember_hosts
from modelyard.server.shedding import DEFAULT_RETRY_AFTER_S, LoadShedder

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class FrontSettings:
    """The front door (issue 12): body limit, allowed hosts (None: any), docs, whether
    every `/v1/*` call needs a key even before one exists (a non-loopback bind), and
    the admin key (from `MODELYARD_ADMIN_KEY`; only its hash is kept) and the
    `/metrics` token (from `MODELYARD_METRICS_TOKEN`, likewise). Past
    `max_in_flight` chat requests in flight (0: no limit) the next is shed with a 503
    and `Retry-After: retry_after_s` (issue 14)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed_hosts: tuple[str, ...] | None = None
    docs: bool = False
    require_auth: bool = False
    admin_key: str | None = None
    metrics_token: str | None = None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    retry_after_s: float = DEFAULT_RETRY_AFTER_S


def create_app(
    engine: Engine,
    *,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    front: FrontSettings | None = None,
    authenticator: Authenticator | None = None,
    telemetry: Sequence[Telemetry] = (),
) -> FastAPI:
    """An OpenAI-compatible app over `engine`. Hooks open and close what the engine
    uses (the ledger, the shared HTTP client); shutdown hooks run in order.
    Prometheus metrics are always kept; `telemetry` adds observers (traces)."""
    front = front or FrontSettings()
    prometheus = PrometheusTelemetry()
    engine.observe(Fanout([prometheus, *telemetry]) if telemetry else prometheus)
    gauges = GaugeSampler(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The tokenizer's ranks load here, not inside the first request (in a
        # thread: loading them blocks for 150-360 ms).
        await anyio.to_thread.run_sync(warm_tokenizer)
        for hook in on_startup:
            await hook()
        try:
            async with metrics_lifespan(gauges):
                yield
        finally:
            for hook in on_shutdown:
                await hook()

    docs = front.docs
    app = FastAPI(
        title="modelyard",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.engine = engine
    auth = authenticator or Authenticator(require_always=front.require_auth)
    app.state.auth = auth
    app.state.keys = auth.keys
    app.state.admin_key_hash = hash_key(front.admin_key) if front.admin_key else None
    app.state.metrics_token_hash = hash_key(front.metrics_token) if front.metrics_token else None
    app.state.gauges = gauges
    # `/metrics` is never open off loopback, whatever authenticator was passed in.
    app.state.require_auth = front.require_auth
    remember_hosts(card.deployment.base_url for card in engine.catalog.cards.values())
    install_error_handlers(app)
    # Added innermost first: the front door runs before anything else.
    app.add_middleware(KeyAuth, authenticator=auth)
    app.add_middleware(HeaderGuard)
    app.add_middleware(
        FrontDoor, max_body_bytes=front.max_body_bytes, allowed_hosts=front.allowed_hosts
    )
    # Outermost: a shed request costs a counter and a canned 503, nothing more.
    app.add_middleware(
        LoadShedder, max_in_flight=front.max_in_flight, retry_after_s=front.retry_after_s
    )
    app.include_router(router)
    app.include_router(embeddings_router)
    app.include_router(messages_router)
    app.include_router(admin_router)
    app.include_router(reviews_router)
    app.include_router(metrics_router)
    install_dashboard(app)
    return app
