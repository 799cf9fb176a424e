"""From a config file (or the built-in stack) to a running Engine or ASGI app.

`load_stack()` is what `modelyard serve`, the other CLI commands and the tests
call, so they all build the same Engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from modelyard.catalog.catalog import Catalog, build_catalog
from modelyard.catalog.defaults import DEFAULT_SOURCE, default_config
from modelyard.config import Config, load
from modelyard.engine import Engine, build_engine
from modelyard.ledger import ledger_url_from_env, open_ledger
from modelyard.ledger.records import LedgerStore
from modelyard.specialists.provider import warm_specialists
from modelyard.specialists.stack import with_specialists

if TYPE_CHECKING:
    from fastapi import FastAPI

# Connection pooling limits for the one shared upstream client: enough for a busy
# gateway replica, bounded so a stuck upstream cannot exhaust file descriptors.
UPSTREAM_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128)


def upstream_client() -> httpx.AsyncClient:
    """The one shared upstream client: httpx over aiohttp when installed (the `fast`
    extra; a fraction of httpcore's CPU per call, see `providers.aiohttp_transport`),
    else httpx's own pool."""
    try:
        from modelyard.providers.aiohttp_transport import AiohttpTransport
    except ImportError:
        return httpx.AsyncClient(limits=UPSTREAM_LIMITS)
    transport = AiohttpTransport(max_connections=UPSTREAM_LIMITS.max_connections or 512)
    return httpx.AsyncClient(transport=transport)


@dataclass
class Stack:
    """A loaded configuration plus the environment it will run in."""

    config: Config
    source: str
    env: Mapping[str, str] = field(repr=False)
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        self.catalog = build_catalog(self.config, self.env, self.source)

    @property
    def ledger_url(self) -> str:
        return ledger_url_from_env(self.config.ledger_url, self.env)

    @property
    def ledger_url_display(self) -> str:
        """The ledger URL for start-up output: the user kept, any password dropped."""
        return display_url(self.ledger_url)

    def build_engine(self, ledger: LedgerStore, client: httpx.AsyncClient | None = None) -> Engine:
        return build_engine(
            self.config, env=self.env, ledger=ledger, client=client, source=self.source
        )

    def create_app(
        self, ledger: LedgerStore | None = None, *, bind_host: str | None = None
    ) -> FastAPI:
        """The gateway app; it opens the ledger, the key store and the budget gate (with
        Redis when `MODELYARD_REDIS_URL` is set), and closes them on shutdown.
        `bind_host`: the address served on (default the config's); off loopback,
        every `/v1/*` call needs a key."""
        from modelyard.budgets.wiring import Budgets, attach
        from modelyard.cache import redis_cache
        from modelyard.observability.otel import tracing_from_env
        from modelyard.server.app import FrontSettings, create_app
        from modelyard.server.auth import Authenticator

        ledger = ledger or open_ledger(self.ledger_url)
        client = upstream_client()
        engine = self.build_engine(ledger, client)
        server = self.config.server
        host = bind_host or server.host
        front = FrontSettings(
            max_body_bytes=server.max_body_bytes,
            allowed_hosts=allowed_hosts(server.allowed_hosts, host),
            docs=server.docs,
            require_auth=not is_loopback(host),
            admin_key=self.env.get("MODELYARD_ADMIN_KEY") or None,
            metrics_token=self.env.get("MODELYARD_METRICS_TOKEN") or None,
            max_in_flight=server.max_in_flight,
            retry_after_s=server.shed_retry_after_s,
        )
        auth = Authenticator(require_always=front.require_auth)
        started: list[Budgets] = []

        async def open_all() -> None:
            await ledger.open()
            budgets = await attach(engine, ledger, self.config.budgets, self.env)
            auth.keys = budgets.keys
            app.state.keys = budgets.keys
            started.append(budgets)
            # With Redis, the response cache is shared by every replica.
            shared = redis_cache(
                self.config.cache, budgets.client, self.config.budgets.redis_prefix
            )
            engine.cache = shared or engine.cache
            # Specialists load now, not on their first request.
            await warm_specialists(engine.executor.providers)

        async def close_budgets() -> None:
            for budgets in started:
                await budgets.close()

        async def drain() -> None:
            # Shadow answers still running are recorded before the ledger closes.
            drain_shadows = getattr(engine.executor.observer, "drain", None)
            if drain_shadows is not None:
                await drain_shadows()

        # Traces when OTEL_EXPORTER_OTLP_ENDPOINT is set (and the `otel` extra installed).
        tracing = tracing_from_env(self.env, engine.catalog)
        flush = [tracing.shutdown] if tracing is not None else []
        app = create_app(
            engine,
            on_startup=[open_all],
            on_shutdown=[client.aclose, close_budgets, drain, ledger.close, *flush],
            front=front,
            authenticator=auth,
            telemetry=[tracing.telemetry] if tracing is not None else [],
        )
        return app


def display_url(url: str) -> str:
    """`url` without its password (user, host and database kept), safe to print; a
    URL that does not parse is not echoed (it may hold a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url.startswith("memory://"):
        return url
    try:
        return make_url(url)._replace(password=None).render_as_string(hide_password=False)
    except ArgumentError:
        return "(a database URL that does not parse)"


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address) is reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(configured: Sequence[str] | None, bind_host: str) -> tuple[str, ...] | None:
    """The `Host` values to answer: the configured list; else the loopback names for a
    loopback bind (DNS rebinding); else any (None)."""
    if configured is not None:
        return tuple(configured)
    if is_loopback(bind_host):
        from modelyard.server.front import LOOPBACK_HOSTS

        return LOOPBACK_HOSTS
    return None


def load_stack(path: str | None, local: Sequence[str], env: Mapping[str, str]) -> Stack:
    """The config at `path`, or the built-in stack with `local` endpoints added."""
    if path is None:
        # Specialists trained into $MODELYARD_HOME join the built-in stack on their own;
        # a config file lists the ones it serves under `specialists:`.
        config = with_specialists(default_config(local), env, discover=True, source=DEFAULT_SOURCE)
        return Stack(config, DEFAULT_SOURCE, env)
    return Stack(with_specialists(load(path), env, source=path), path, env)
