"""`BudgetState`: the same rules in process and in Redis (the machine's, a private
prefix). Reservations are all-or-nothing across budgets, never overshoot at any
concurrency, expire into spend (no leak), and refuse until initialised."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from modelyard.budgets.redis_state import RedisBudgets
from modelyard.budgets.spec import Budget, Window
from modelyard.budgets.state import BudgetState, InProcessBudgets, NeedsInit
from modelyard.ledger.records import SpendScope

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[BudgetState]:
    if request.param == "memory":
        yield InProcessBudgets()
        return
    from modelyard.budgets.wiring import redis_client

    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    client: Any = redis_client(url)
    yield RedisBudgets(client, prefix)
    await client.aclose()


def window(subject: str, usd: str, period: str = "month") -> Window:
    return Budget(SpendScope("team", subject), Decimal(usd), period).window(NOW)


async def ready(state: BudgetState, *windows: Window) -> None:
    for w in windows:
        await state.initialise(w, [0] * len(w.sum_keys))


async def test_a_window_refuses_until_initialised(state: BudgetState) -> None:
    w = window("a", "1")
    with pytest.raises(NeedsInit):
        await state.reserve("r1", [w], 10, NOW.timestamp(), 60)
    await state.initialise(w, [400])
    assert await state.remaining([w], NOW.timestamp()) == [10**9 - 400]
    # A second initialisation (another replica's) changes nothing.
    await state.initialise(w, [0])
    assert await state.remaining([w], NOW.timestamp()) == [10**9 - 400]


async def test_reserve_is_all_or_nothing_across_budgets(state: BudgetState) -> None:
    big, small = window("big", "1"), window("small", "0.000001")  # 1000 nanos
    await ready(state, big, small)
    now = NOW.timestamp()
    refused = await state.reserve("r1", [big, small], 1500, now, 60)
    assert refused is not None
    assert refused.index == 1
    assert refused.left_nanos == 1000
    # Nothing was held in the budget that had room.
    assert await state.remaining([big, small], now) == [10**9, 1000]
    assert await state.reserve("r2", [big, small], 600, now, 60) is None
    assert await state.remaining([big, small], now) == [10**9 - 600, 400]
    await state.settle("r2", 250, now)
    assert await state.remaining([big, small], now) == [10**9 - 250, 750]
    await state.settle("r2", 250, now)  # twice: ignored
    assert await state.remaining([big, small], now) == [10**9 - 250, 750]


async def test_concurrent_reservations_never_exceed_the_budget(state: BudgetState) -> None:
    w = window("race", "0.0001")  # 100_000 nanos
    await ready(state, w)
    now = NOW.timestamp()
    rng = random.Random(3)
    amounts = [rng.randint(1_000, 9_000) for _ in range(200)]

    async def one(i: int) -> int:
        refused = await state.reserve(f"r{i}", [w], amounts[i], now, 60)
        if refused is not None:
            return 0
        # Settle at a random share of the reservation (what the call really cost).
        cost = amounts[i] * rng.randint(50, 100) // 100
        await state.settle(f"r{i}", cost, now)
        return cost

    spent = sum(await asyncio.gather(*(one(i) for i in range(200))))
    left = (await state.remaining([w], now))[0]
    assert spent <= 100_000
    assert left == 100_000 - spent
    assert await state.open_reservations() == 0


async def test_an_expired_reservation_becomes_spend_and_frees_its_hold(state: BudgetState) -> None:
    w = window("dead", "0.00001")  # 10_000 nanos
    await ready(state, w)
    now = NOW.timestamp()
    assert await state.reserve("dies", [w], 4_000, now, 30) is None
    assert await state.open_reservations() == 1
    assert await state.expire(now + 10) == 0
    assert await state.expire(now + 31) == 1
    assert await state.open_reservations() == 0
    # Counted at its full amount: the ledger bills an interrupted attempt at its estimate.
    assert await state.remaining([w], now + 31) == [6_000]
    await state.settle("dies", 100, now + 40)  # a late settle of an expired one: ignored
    assert await state.remaining([w], now + 40) == [6_000]


async def test_rate_limits_count_requests_and_tokens_per_minute(state: BudgetState) -> None:
    now = 1_800_000_000.0  # a minute boundary
    assert await state.rate("k", 2, None, 0, now) is None
    assert await state.rate("k", 2, None, 0, now + 1) is None
    wait = await state.rate("k", 2, None, 0, now + 10)
    assert wait == pytest.approx(50.0)
    assert await state.rate("k", 2, None, 0, now + 60) is None  # next minute
    assert await state.rate("t", None, 100, 60, now) is None
    assert await state.rate("t", None, 100, 60, now) is not None


async def test_a_retried_reservation_holds_once(state: BudgetState) -> None:
    w = window("retry", "0.00001")
    await ready(state, w)
    now = NOW.timestamp()
    assert await state.reserve("same", [w], 4_000, now, 60) is None
    # The gate retries a reserve whose reply timed out: it must not hold twice.
    assert await state.reserve("same", [w], 4_000, now, 60) is None
    assert await state.remaining([w], now) == [6_000]
    await state.settle("same", 1_000, now)
    assert await state.remaining([w], now) == [9_000]
