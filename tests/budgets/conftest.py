"""Fixtures for budgets: the machine's Redis (a private key prefix per test, deleted
afterwards), an app over the test stack with keys and a budget gate attached.

Redis comes from `MODELYARD_TEST_REDIS_URL` (default redis://127.0.0.1:6379/0).
Unreachable: the Redis cases skip, except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx
import pytest

from modelyard.budgets.wiring import Budgets, attach
from modelyard.config import BudgetsConfig
from modelyard.engine import Engine, build_engine
from modelyard.keys import KeyStore
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import FrontSettings, create_app
from modelyard.server.auth import Authenticator
from modelyard.types import Usage
from tests.stack import ENV, echo_completion, stack_config

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _skip_or_fail(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"{reason} (CI is set, so Redis tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def redis_url() -> str:
    """The test Redis URL once it answered; skip (or fail under CI) otherwise."""
    try:
        import redis
    except ImportError:
        _skip_or_fail("redis is not installed (pip install 'modelyard[redis]')")
    url = os.environ.get("MODELYARD_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as exc:
        _skip_or_fail(f"Redis at {url} is unreachable: {exc}")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted afterwards."""
    import redis

    prefix = f"modelyard-test-{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    """An asyncio client on the test Redis."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    await client.aclose()


@dataclass
class Gateway:
    """An app over the test stack with keys and a budget gate."""

    engine: Engine
    ledger: Any
    keys: KeyStore
    budgets: Budgets
    client: httpx.AsyncClient
    providers: dict[str, FunctionProvider]


async def make_gateway(
    env: dict[str, str] | None = None,
    front: FrontSettings | None = None,
    settings: BudgetsConfig | None = None,
    usage: Usage | None = None,
    ledger: Any = None,
    config: Any = None,
) -> Gateway:
    ledger = ledger or InMemoryLedger()
    await ledger.open()
    providers = {
        n: FunctionProvider(echo_completion(usage=usage or Usage(input_tokens=10, output_tokens=5)))
        for n in ("cheapco", "bigco", "onprem")
    }
    counter = iter(range(1, 1_000_000))
    replica = secrets.token_hex(3)  # ids unique across replicas sharing a ledger
    engine = build_engine(
        config or stack_config(),
        env=ENV,
        ledger=ledger,
        providers=providers,
        rng=random.Random(7),
        ids=lambda: f"{replica}-{next(counter)}",
        source="test-stack.yaml",
    )
    budgets = await attach(engine, ledger, settings or BudgetsConfig(refresh_s=0.0), env or {})
    auth = Authenticator(keys=budgets.keys, cache_s=0.0)
    app = create_app(
        engine,
        front=front or FrontSettings(admin_key="admin-secret-1234567890"),
        authenticator=auth,
    )
    app.state.keys = budgets.keys
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
    return Gateway(engine, ledger, budgets.keys, budgets, client, providers)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = await make_gateway()
    yield gw
    await gw.client.aclose()
    await gw.budgets.close()
    await gw.ledger.close()
