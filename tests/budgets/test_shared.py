"""Shared state across replicas (issue 12, point 5), on the machine's Redis: exact
budgets across two gateways, counters rebuilt from the ledger at start and after a
flush, every reservation settled (fallbacks included), the Redis-down choice, and
breakers / 429 cool-downs shared."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modelyard.admin import KeySpec, create_key, set_budget
from modelyard.config import BudgetsConfig
from modelyard.errors import ProviderRateLimitError, ProviderServerError
from modelyard.health import BreakerSettings, InProcessHealth
from modelyard.ledger import SqlLedger
from modelyard.shared_health import SharedHealth
from modelyard.types import ChatRequest, Completion, Usage
from tests.budgets.conftest import Gateway, make_gateway

BODY = {"model": "cheap", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 100}


async def answer(request: ChatRequest, upstream: str) -> Completion:
    await asyncio.sleep(0.01)
    out = min(95, request.output_limit or 95)
    return Completion("c", upstream, "x", usage=Usage(input_tokens=10, output_tokens=out))


async def replicas(
    n: int, db: Path, redis_url: str | None, prefix: str, **settings: Any
) -> list[Gateway]:
    env = {"MODELYARD_REDIS_URL": redis_url} if redis_url else {}
    out = []
    for _ in range(n):
        gw = await make_gateway(
            env=env,
            settings=BudgetsConfig(refresh_s=0, redis_prefix=prefix, **settings),
            ledger=SqlLedger(f"sqlite:///{db}"),
        )
        gw.providers["cheapco"].complete_fn = answer
        out.append(gw)
    return out


async def close(gws: list[Gateway]) -> None:
    for gw in gws:
        await gw.client.aclose()
        await gw.budgets.close()
        await gw.ledger.close()


async def test_two_replicas_never_overshoot_a_shared_budget(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    gws = await replicas(2, tmp_path / "l.db", redis_url, redis_prefix)
    secret, _ = await create_key(gws[0].keys, KeySpec(name="bot", team="t", models=["small"]))
    await set_budget(gws[0].keys, "team", "t", "0.0004/month")
    headers = {"authorization": f"Bearer {secret}"}

    async def call(i: int) -> int:
        r = await gws[i % 2].client.post("/v1/chat/completions", json=BODY, headers=headers)
        return r.status_code

    statuses = await asyncio.gather(*(call(i) for i in range(40)))
    assert set(statuses) <= {200, 402}
    assert statuses.count(402) > 0
    spent = sum(r.cost_usd for r in await gws[0].ledger.records(limit=10_000))
    assert spent <= Decimal("0.0004")
    assert await gws[0].budgets.gate.open_reservations() == 0
    await close(gws)


async def test_counters_are_rebuilt_from_the_ledger_at_start_and_after_a_flush(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    (first,) = await replicas(1, tmp_path / "l.db", redis_url, redis_prefix)
    secret, _ = await create_key(first.keys, KeySpec(name="bot", team="t", models=["small"]))
    headers = {"authorization": f"Bearer {secret}"}
    for _ in range(3):
        r = await first.client.post("/v1/chat/completions", json=BODY, headers=headers)
        assert r.status_code == 200
    spent = sum(r.cost_usd for r in await first.ledger.records())
    # The budget is set after the spend: its counters come from the ledger.
    await set_budget(first.keys, "team", "t", "1/month")
    r = await first.client.post("/v1/chat/completions", json=BODY, headers=headers)
    left = Decimal(r.headers["x-modelyard-budget-remaining-usd"])
    spent = sum(r.cost_usd for r in await first.ledger.records())
    assert left == Decimal(1) - spent
    # Redis flushed (our prefix): the next call rebuilds the same figure.
    keys = [k async for k in redis_client.scan_iter(match=redis_prefix + "*")]
    await redis_client.delete(*keys)
    r = await first.client.post("/v1/chat/completions", json=BODY, headers=headers)
    spent = sum(r.cost_usd for r in await first.ledger.records())
    assert Decimal(r.headers["x-modelyard-budget-remaining-usd"]) == Decimal(1) - spent
    await close([first])


async def test_fallbacks_settle_every_reservation(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    (gw,) = await replicas(1, tmp_path / "l.db", redis_url, redis_prefix)

    async def broken(request: ChatRequest, upstream: str) -> Completion:
        raise ProviderServerError("bigco: 500", provider="bigco")

    gw.providers["bigco"].complete_fn = broken
    gw.providers["onprem"].complete_fn = broken
    secret, _ = await create_key(gw.keys, KeySpec(name="bot", team="t"))
    await set_budget(gw.keys, "team", "t", "1/month")
    body = {**BODY, "model": "best"}
    r = await gw.client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"}
    )
    assert r.status_code == 200
    records = await gw.ledger.records()
    assert next(x.status for x in records) == "error"
    assert records[-1].status == "ok"
    assert await gw.budgets.gate.open_reservations() == 0
    spent = sum(x.cost_usd for x in records)
    left = Decimal(r.headers["x-modelyard-budget-remaining-usd"])
    assert left == Decimal(1) - spent
    await close([gw])


@pytest.mark.parametrize("mode", ["closed", "local"])
async def test_an_unreachable_redis_fails_closed_or_falls_back(tmp_path: Path, mode: str) -> None:
    (gw,) = await replicas(1, tmp_path / "l.db", "redis://127.0.0.1:1/0", "x:", on_redis_down=mode)
    secret, _ = await create_key(gw.keys, KeySpec(name="bot", team="t", models=["small"]))
    await set_budget(gw.keys, "team", "t", "1/month")
    headers = {"authorization": f"Bearer {secret}"}
    r = await gw.client.post("/v1/chat/completions", json=BODY, headers=headers)
    health = (await gw.client.get("/health")).json()
    if mode == "closed":
        assert r.status_code == 503
        assert "Redis" in r.json()["error"]["message"]
        assert await gw.ledger.records() == []
    else:
        assert r.status_code == 200
        assert health["status"] == "degraded"
        assert "per-replica" in health["budgets"]["degraded"]
    await close([gw])


async def test_breakers_and_429_cool_downs_are_shared(redis_url: str, redis_prefix: str) -> None:
    from modelyard.budgets.wiring import redis_client

    settings = BreakerSettings(failure_threshold=2, cooldown_s=30)
    a_client, b_client = redis_client(redis_url), redis_client(redis_url)
    a = SharedHealth(InProcessHealth(settings), a_client, prefix=redis_prefix)
    b = SharedHealth(InProcessHealth(settings), b_client, prefix=redis_prefix)
    a.record_failure("bigco", ProviderRateLimitError("429", retry_after=20), 100.0)
    for _ in range(2):
        a.record_failure("cheapco", ProviderServerError("500"), 100.0)
    await a.close()
    await b.pull()
    seen = b.unavailable(b.monotonic())
    assert "cooling down after 429" in seen["bigco"]
    assert seen["cheapco"].startswith("circuit open")
    assert not b.acquire("cheapco", b.monotonic())
    await a_client.aclose()
    await b_client.aclose()


async def test_streams_and_hedges_settle_every_reservation(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    from tests.stack import STACK, stack_config

    policies = {**STACK["policies"], "hedged": {"type": "best", "hedge_after_ms": 5}}
    gw = await make_gateway(
        env={"MODELYARD_REDIS_URL": redis_url},
        settings=BudgetsConfig(refresh_s=0, redis_prefix=redis_prefix),
        ledger=SqlLedger(f"sqlite:///{tmp_path / 'l.db'}"),
        config=stack_config(policies=policies),
    )

    async def slow(request: ChatRequest, upstream: str) -> Completion:
        await asyncio.sleep(0.5)  # the first choice is slow: the hedge starts and wins
        return Completion("c", upstream, "x", usage=Usage(input_tokens=10, output_tokens=5))

    gw.providers["bigco"].complete_fn = slow
    secret, _ = await create_key(gw.keys, KeySpec(name="bot", team="t"))
    await set_budget(gw.keys, "team", "t", "1/month")
    headers = {"authorization": f"Bearer {secret}"}
    r = await gw.client.post(
        "/v1/chat/completions", json={**BODY, "model": "hedged"}, headers=headers
    )
    assert r.status_code == 200
    statuses = sorted(x.status for x in await gw.ledger.records())
    assert statuses == ["cancelled", "ok"]
    r = await gw.client.post("/v1/chat/completions", json={**BODY, "stream": True}, headers=headers)
    assert r.status_code == 200
    assert "x-modelyard-budget-remaining-usd" in r.headers
    assert await gw.budgets.gate.open_reservations() == 0
    spent = sum(x.cost_usd for x in await gw.ledger.records())
    r = await gw.client.post("/v1/chat/completions", json=BODY, headers=headers)
    spent = sum(x.cost_usd for x in await gw.ledger.records())
    assert Decimal(r.headers["x-modelyard-budget-remaining-usd"]) == Decimal(1) - spent
    await close([gw])


@pytest.mark.parametrize("mode", ["closed", "local"])
async def test_redis_dropping_mid_call_loses_no_record_and_is_no_500(
    tmp_path: Path, redis_url: str, redis_prefix: str, mode: str
) -> None:
    from modelyard.budgets.redis_state import RedisBudgets
    from modelyard.budgets.wiring import redis_client

    (gw,) = await replicas(1, tmp_path / "l.db", redis_url, redis_prefix, on_redis_down=mode)
    gate = gw.budgets.gate
    dead = redis_client("redis://127.0.0.1:1/0")

    async def drops(request: ChatRequest, upstream: str) -> Completion:
        gate.primary = RedisBudgets(dead, redis_prefix)  # Redis goes away mid-call
        return await answer(request, upstream)

    gw.providers["cheapco"].complete_fn = drops
    secret, _ = await create_key(gw.keys, KeySpec(name="bot", team="t", models=["small"]))
    await set_budget(gw.keys, "team", "t", "1/month")
    headers = {"authorization": f"Bearer {secret}"}
    r = await gw.client.post("/v1/chat/completions", json=BODY, headers=headers)
    assert r.status_code == 200
    assert [x.status for x in await gw.ledger.records()] == ["ok"]
    r = await gw.client.post("/v1/chat/completions", json=BODY, headers=headers)
    assert r.status_code == (503 if mode == "closed" else 200)
    await dead.aclose()
    await close([gw])
