"""Start-up wiring: the key store, the budget gate and, with `MODELYARD_REDIS_URL`,
the Redis client shared by budgets, rate limits and breakers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelyard.budgets.gate import BudgetGate
from modelyard.budgets.state import BudgetState, InProcessBudgets
from modelyard.config import BudgetsConfig
from modelyard.engine import Engine
from modelyard.errors import ConfigError
from modelyard.health import InProcessHealth
from modelyard.keys import KeyStore
from modelyard.ledger.records import LedgerStore
from modelyard.shared_health import SharedHealth

log = logging.getLogger("modelyard.budgets")
REDIS_URL_ENV = "MODELYARD_REDIS_URL"
REDIS_DOWN_ENV = "MODELYARD_REDIS_DOWN"


def redis_client(url: str) -> Any:
    """An asyncio Redis client: a dead Redis answers fast (connecting times out
    after 1 s: 503 or the fallback); a busy one gets 5 s per command."""
    try:
        import redis.asyncio as aioredis
    except ImportError:
        raise ConfigError(
            f"{REDIS_URL_ENV} is set but redis is not installed: pip install 'modelyard[redis]'"
        ) from None
    # A blocking pool: a burst of requests waits for a connection instead of failing.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=64, timeout=5.0, socket_timeout=5.0, socket_connect_timeout=1.0
    )
    return aioredis.Redis(connection_pool=pool)


@dataclass
class Budgets:
    """What `attach` started, to be closed at shutdown."""

    keys: KeyStore
    gate: BudgetGate
    client: Any = None
    health: SharedHealth | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.health is not None:
            await self.health.close()
        if self.client is not None:
            await self.client.aclose()
        await self.keys.close()


async def attach(
    engine: Engine, ledger: LedgerStore, settings: BudgetsConfig, env: Mapping[str, str]
) -> Budgets:
    """Open the key store next to `ledger` and give `engine` its budget gate (and
    shared breakers when Redis is configured). Call after `ledger.open()`."""
    keys = await KeyStore.for_ledger(ledger)
    url = env.get(REDIS_URL_ENV)
    on_down = env.get(REDIS_DOWN_ENV, settings.on_redis_down)
    if on_down not in ("closed", "local"):
        raise ConfigError(f"{REDIS_DOWN_ENV} must be 'closed' or 'local', got {on_down!r}")
    client: Any = None
    state: BudgetState = InProcessBudgets()
    if url:
        from modelyard.budgets.redis_state import RedisBudgets

        client = redis_client(url)
        state = RedisBudgets(client, settings.redis_prefix)
    gate = BudgetGate(
        keys,
        ledger,
        state,
        shared=client is not None,
        on_redis_down="local" if on_down == "local" else "closed",
        reservation_ttl_s=settings.reservation_ttl_s,
        refresh_s=settings.refresh_s,
    )
    engine.gate = gate
    engine.executor.budgets = gate
    out = Budgets(keys, gate, client)
    local = engine.executor.health
    if client is not None and isinstance(local, InProcessHealth):
        shared = SharedHealth(local, client, prefix=settings.redis_prefix)
        engine.executor.health = shared
        out.health = shared
        out.tasks.append(asyncio.get_running_loop().create_task(shared.run()))
    log.info("budgets: %s", "redis" if client is not None else "in-process")
    return out


Hook = Callable[[], Awaitable[None]]
