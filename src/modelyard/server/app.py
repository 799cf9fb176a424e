"""The ASGI application: `create_app(engine)` plus a lifespan that owns resources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelyard.engine import Engine
from modelyard.server.errors import install_error_handlers
from modelyard.server.guard import HeaderGuard
from modelyard.server.reviews import router as reviews_router
from modelyard.server.routes import router

Hook = Callable[[], Awaitable[None]]


def create_app(
    engine: Engine, *, on_startup: Sequence[Hook] = (), on_shutdown: Sequence[Hook] = ()
) -> FastAPI:
    """An OpenAI-compatible app over `engine`. Hooks open and close what the engine
    uses (the ledger, the shared HTTP client); shutdown hooks run in order."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        try:
            yield
        finally:
            for hook in on_shutdown:
                await hook()

    app = FastAPI(title="modelyard", version="0.1.0", lifespan=lifespan)
    app.state.engine = engine
    install_error_handlers(app)
    app.add_middleware(HeaderGuard)
    app.include_router(router)
    app.include_router(reviews_router)
    return app
