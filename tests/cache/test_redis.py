"""The Redis backend against the machine's real Redis: shared between replicas,
expired by Redis, corrupt values dropped, and a dead Redis failing open."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from modelyard.app_factory import Stack
from modelyard.cache import RedisBackend, ResponseCache, redis_cache
from modelyard.config import CacheConfig
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from tests.cache.conftest import CACHE_ON, ask, calls, make_engine, status
from tests.stack import ENV, stack_config


def redis_backed(client: Any, prefix: str, **settings: Any) -> ResponseCache:
    cache = redis_cache(CacheConfig(**{**CACHE_ON, **settings}), client, prefix)
    assert cache is not None
    return cache


async def test_replicas_share_answers_through_redis(
    ledger: InMemoryLedger,
    providers: dict[str, FunctionProvider],
    redis_client: Any,
    redis_prefix: str,
) -> None:
    one, two = make_engine(ledger, providers), make_engine(ledger, providers)
    one.cache = redis_backed(redis_client, redis_prefix)
    two.cache = redis_backed(redis_client, redis_prefix)
    _, bought = await one.complete(ask(model="cheap"))
    _, shared = await two.complete(ask(model="cheap"))
    assert (status(bought), status(shared)) == ("miss", "hit")
    assert shared.completion.content == bought.completion.content
    assert calls(providers) == 1
    keys = [k async for k in redis_client.scan_iter(match=redis_prefix + "cache:*")]
    assert len(keys) == 1
    ttl_ms = await redis_client.pttl(keys[0])
    assert 0 < ttl_ms <= 60_000


async def test_redis_expires_entries_after_the_ttl(
    ledger: InMemoryLedger,
    providers: dict[str, FunctionProvider],
    redis_client: Any,
    redis_prefix: str,
) -> None:
    engine = make_engine(ledger, providers)
    engine.cache = redis_backed(redis_client, redis_prefix, ttl_s=0.3)
    await engine.complete(ask())
    _, fresh = await engine.complete(ask())
    await asyncio.sleep(0.45)
    _, expired = await engine.complete(ask())
    assert (status(fresh), status(expired)) == ("hit", "miss")


async def test_corrupt_redis_value_is_a_miss_and_is_replaced(
    ledger: InMemoryLedger,
    providers: dict[str, FunctionProvider],
    redis_client: Any,
    redis_prefix: str,
) -> None:
    engine = make_engine(ledger, providers)
    engine.cache = redis_backed(redis_client, redis_prefix)
    await engine.complete(ask())
    (key,) = [k async for k in redis_client.scan_iter(match=redis_prefix + "cache:*")]
    await redis_client.set(key, b"\x00\xffpickle?")
    _, outcome = await engine.complete(ask())
    assert status(outcome) == "miss"
    assert outcome.cache is not None
    assert outcome.cache.reason == "corrupt entry dropped"
    _, healed = await engine.complete(ask())
    assert status(healed) == "hit"


async def test_redis_down_serves_uncached_and_logs_once(
    ledger: InMemoryLedger,
    providers: dict[str, FunctionProvider],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis.asyncio as aioredis

    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    engine = make_engine(ledger, providers)
    engine.cache = redis_backed(dead, "modelyard-test-dead:")
    with caplog.at_level(logging.WARNING, logger="modelyard.cache"):
        outcomes = [(await engine.complete(ask()))[1] for _ in range(3)]
    assert [status(o) for o in outcomes] == ["bypass"] * 3
    assert all(o.cache is not None and o.cache.reason == "cache unavailable" for o in outcomes)
    assert all((o.completion.content or "").startswith("ok from") for o in outcomes)
    assert calls(providers) == 3
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    await dead.aclose()


async def test_gateway_with_redis_url_uses_the_shared_backend(redis_url: str) -> None:
    env = {**ENV, "MODELYARD_REDIS_URL": redis_url}
    stack = Stack(stack_config(cache={"enabled": True}), "test-stack.yaml", env)
    app = stack.create_app(InMemoryLedger())
    async with app.router.lifespan_context(app):
        cache = app.state.engine.cache
        assert isinstance(cache.backend, RedisBackend)
        assert cache.backend.prefix == "modelyard:cache:"


async def test_restart_without_the_cached_model_routes_afresh(
    ledger: InMemoryLedger,
    providers: dict[str, FunctionProvider],
    redis_client: Any,
    redis_prefix: str,
) -> None:
    from tests.stack import STACK

    before = make_engine(ledger, providers)
    before.cache = redis_backed(redis_client, redis_prefix)
    await before.complete(ask(model="pinned"))  # `small` answers; kept in Redis
    # The gateway restarts with a config that no longer has `small`.
    models = {k: v for k, v in STACK["models"].items() if k != "small"}
    policies = {**STACK["policies"], "pinned": {"type": "fixed", "model": "frontier"}}
    after = make_engine(
        ledger, providers, models=models, aliases={"best-model": "frontier"}, policies=policies
    )
    after.cache = redis_backed(redis_client, redis_prefix)
    _, outcome = await after.complete(ask(model="pinned"))
    assert (status(outcome), outcome.card.id) == ("miss", "frontier")
    assert outcome.cache is not None
    assert "'small' is no longer in the catalog" in (outcome.cache.reason or "")
    _, again = await after.complete(ask(model="pinned"))
    assert (status(again), again.card.id) == ("hit", "frontier")
