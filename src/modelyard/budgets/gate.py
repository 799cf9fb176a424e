"""The budget gate: what the engine and the executor ask before and after spending.

    engine:   allowance(principal) ─► Router.plan(..., allowance)   (pure, downgrades)
              admit(principal, tokens)                               (rate limits, 429)
    executor: reserve(record id, principal, amount)  before each attempt's `started` write
              settle(record id, cost)                after its completed write
              release(record id)                     when its call never left

The gate reads budget rows from the ledger database (refreshed every few
seconds, so `modelyard budgets set` reaches running replicas), keeps counters in a
`BudgetState` (Redis when `MODELYARD_REDIS_URL` is set, else in process), and
rebuilds a window's counters from the ledger before its first reservation.

Redis unreachable: `on_redis_down="closed"` answers 503; `"local"` falls back to
in-process counters (per-replica limits: each replica enforces the whole budget
against its own view), logs a warning, shows it on `/health`, and tries Redis
again every `retry_redis_s`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, TypeVar

from modelyard.budgets.fit import Allowance
from modelyard.budgets.spec import Budget, Window
from modelyard.budgets.state import BudgetState, InProcessBudgets, NeedsInit, Refused
from modelyard.errors import BudgetExceededError, RateLimitedError, ServiceUnavailableError
from modelyard.keys import KeyStore, Principal, matching
from modelyard.ledger.migrations import nanousd_to_usd, usd_to_nanousd
from modelyard.ledger.records import LedgerStore

log = logging.getLogger("modelyard.budgets")
OnRedisDown = Literal["closed", "local"]
_T = TypeVar("_T")


def redis_down(exc: BaseException) -> bool:
    """Whether `exc` means the shared store cannot be reached (not a bug of ours)."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is installed whenever it is used
        return isinstance(exc, OSError)
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)


def _timed_out(exc: BaseException) -> bool:
    try:
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, RedisTimeoutError | TimeoutError)


class BudgetGate:
    """Budgets, reservations and rate limits for one gateway process."""

    def __init__(
        self,
        keys: KeyStore,
        ledger: LedgerStore,
        state: BudgetState | None = None,
        *,
        shared: bool = False,
        on_redis_down: OnRedisDown = "closed",
        reservation_ttl_s: float = 360.0,
        refresh_s: float = 5.0,
        retry_redis_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.ledger = ledger
        self.primary: BudgetState = state or InProcessBudgets()
        self.local = InProcessBudgets()
        self.shared = shared
        self.on_redis_down = on_redis_down
        self.ttl_s = reservation_ttl_s
        self.refresh_s = refresh_s
        self.retry_redis_s = retry_redis_s
        self.clock = clock
        self.degraded: str | None = None
        self._degraded_at = 0.0
        self._budgets: list[Budget] = []
        self._loaded_at = -math.inf
        self._local_rids: set[str] = set()
        # (state, budget) pairs this process has rebuilt from the ledger for `headroom`.
        self._counted: set[tuple[int, str]] = set()
        # Seconds spent in gate calls, per request (for bench/budgets.py).
        self.timings: deque[float] = deque(maxlen=20_000)

    async def budgets(self) -> list[Budget]:
        """Every budget row, re-read at most every `refresh_s`."""
        now = time.monotonic()
        if now - self._loaded_at >= self.refresh_s:
            self._budgets = await self.keys.budgets()
            self._loaded_at = now
        return self._budgets

    def invalidate(self) -> None:
        """Re-read budget rows on the next call (after an admin change)."""
        self._loaded_at = -math.inf

    async def windows(self, principal: Principal) -> list[Window]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        return [b.window(now) for b in matching(await self.budgets(), principal.scopes())]

    # --- state access, with the Redis-down policy -------------------------------

    def _state(self) -> BudgetState:
        if self.degraded is None:
            return self.primary
        if time.monotonic() - self._degraded_at >= self.retry_redis_s:
            self._degraded_at = time.monotonic()
            return self.primary  # try it again; `_use` degrades once more if still down
        return self.local

    async def _use(self, op: Callable[[BudgetState], Awaitable[_T]]) -> tuple[_T, bool]:
        """`op` on the current state; whether it ran on the local fallback."""
        state = self._state()
        try:
            try:
                result = await op(state)
            except Exception as exc:
                if state is self.local or not self.shared or not _timed_out(exc):
                    raise
                # One retry: under CPU starvation a live Redis's reply can miss the
                # socket timeout. Every script is idempotent per reservation id.
                result = await op(state)
        except Exception as exc:
            if state is self.local or not self.shared or not redis_down(exc):
                raise
            if self.on_redis_down == "closed":
                log.error("shared budget state (Redis) unreachable: failing closed (%s)", exc)
                raise ServiceUnavailableError(
                    "budget state is unreachable (Redis down); the gateway fails closed "
                    "(set MODELYARD_REDIS_DOWN=local to fall back to per-replica limits)"
                ) from None
            self._degrade(exc)
            return await op(self.local), True
        if state is self.primary and self.degraded is not None:
            log.warning("shared budget state (Redis) is back")
            self.degraded = None
        return result, state is self.local

    def _degrade(self, exc: BaseException) -> None:
        if self.degraded is None:
            log.warning(
                "shared budget state (Redis) unreachable (%s): falling back to per-replica "
                "limits until it answers again",
                type(exc).__name__,
            )
        self.degraded = "redis unreachable: per-replica budget and rate limits"
        self._degraded_at = time.monotonic()

    async def _initialise(self, state: BudgetState, window: Window) -> None:
        """Rebuild one window's counters from the ledger (spend per bucket)."""
        budget = next(b for b in self._budgets if b.bid == window.bid)
        spent = [await self.ledger.spend(budget.scope, a, b) for a, b in window.bucket_bounds]
        await state.initialise(window, spent)
        log.info(
            "budget %s rebuilt from the ledger: $%s spent", window.label, nanousd_to_usd(sum(spent))
        )

    # --- the calls the engine and the executor make ------------------------------

    async def allowance(self, principal: Principal) -> Allowance:
        """The headroom snapshot the router plans against."""
        t0 = time.perf_counter()
        windows = await self.windows(principal)
        key = principal.key
        base = Allowance(
            models=key.models if key else (),
            key_name=key.name if key else None,
            cap_max_tokens=key.cap_max_tokens if key else True,
        )
        if not windows:
            return base
        now = self.clock()

        async def left(state: BudgetState) -> list[int]:
            return await state.remaining(windows, now)

        lefts, _ = await self._use(left)
        i = min(range(len(windows)), key=lambda j: lefts[j])
        w = windows[i]
        self.timings.append(time.perf_counter() - t0)
        return Allowance(
            remaining_usd=nanousd_to_usd(max(lefts[i], 0)),
            budget=w.label,
            resets_at=w.resets_at,
            on_exhaust=w.on_exhaust,
            models=base.models,
            key_name=base.key_name,
            cap_max_tokens=base.cap_max_tokens,
        )

    async def admit(self, principal: Principal, tokens: int) -> None:
        """Count this request against its key's rate limits; 429 when over."""
        key = principal.key
        if key is None or (key.rpm is None and key.tpm is None):
            return
        now = self.clock()

        async def rate(state: BudgetState) -> float | None:
            return await state.rate(key.id, key.rpm, key.tpm, tokens, now)

        wait, _ = await self._use(rate)
        if wait is not None:
            limits = ", ".join(
                f"{n} {what} per minute"
                for n, what in ((key.rpm, "requests"), (key.tpm, "tokens"))
                if n is not None
            )
            raise RateLimitedError(
                f"rate limit exceeded for key '{key.name}' ({limits}); retry after "
                f"{math.ceil(wait)}s",
                retry_after=max(1.0, math.ceil(wait)),
            )

    async def reserve(self, rid: str, principal: Principal, amount: Decimal) -> None:
        """Hold `amount` in every budget of `principal`, or raise `BudgetExceededError`."""
        t0 = time.perf_counter()
        windows = await self.windows(principal)
        if not windows:
            return
        nanos = usd_to_nanousd(amount)
        now = self.clock()
        by_bid = {w.bid: w for w in windows}

        async def hold(state: BudgetState) -> Refused | None:
            for _ in range(len(windows) + 1):
                try:
                    return await state.reserve(rid, windows, nanos, now, self.ttl_s)
                except NeedsInit as need:
                    await self._initialise(state, by_bid[need.bid])
            raise ServiceUnavailableError("budget counters could not be initialised")

        refused, local = await self._use(hold)
        self.timings.append(time.perf_counter() - t0)
        if refused is not None:
            w = windows[refused.index]
            left = nanousd_to_usd(max(refused.left_nanos, 0))
            raise BudgetExceededError(
                f"budget exceeded: {w.label} has ${left:.6f} left, this attempt needs "
                f"${amount:.6f} reserved; it resets at "
                f"{w.resets_at.isoformat().replace('+00:00', 'Z')}",
                budget=w.label,
                resets_at=w.resets_at.isoformat(),
            )
        if local:
            self._local_rids.add(rid)

    async def settle(self, rid: str, cost: Decimal) -> None:
        """The attempt ended: its reservation becomes spend of `cost`."""
        nanos = usd_to_nanousd(cost)
        now = self.clock()
        if rid in self._local_rids:
            self._local_rids.discard(rid)
            await self.local.settle(rid, nanos, now)
            return
        try:
            await self._use(lambda s: s.settle(rid, nanos, now))
        except ServiceUnavailableError:
            # Failing closed refuses new spend; a reservation that cannot be settled
            # now expires and is counted at its full amount (never under-counted).
            log.warning("could not settle reservation %s: Redis unreachable", rid)

    async def release(self, rid: str) -> None:
        """The attempt never reached the network: free its reservation."""
        await self.settle(rid, Decimal(0))

    async def remaining_usd(self, principal: Principal) -> Decimal | None:
        """The tightest budget's headroom now (for the response header)."""
        allowance = await self.allowance(principal)
        return allowance.remaining_usd

    async def headroom(self) -> list[tuple[Budget, Decimal]]:
        """Every budget's headroom now (limit minus spend and live reservations, at
        least 0), for `/metrics`. A budget this process has not read yet is rebuilt
        from the ledger first, so a fresh process never reports a full budget."""
        budgets = await self.budgets()
        if not budgets:
            return []
        now = self.clock()
        windows = [b.window(datetime.fromtimestamp(now, UTC)) for b in budgets]

        async def left(state: BudgetState) -> list[int]:
            for w in windows:
                if (id(state), w.bid) not in self._counted:
                    await self._initialise(state, w)
                    self._counted.add((id(state), w.bid))
            return await state.remaining(windows, now)

        lefts, _ = await self._use(left)
        return [(b, nanousd_to_usd(max(n, 0))) for b, n in zip(budgets, lefts, strict=True)]

    async def open_reservations(self) -> int:
        """Reservations still held after converting expired ones (leaks if > 0 once
        every call has ended and the TTL has passed)."""
        now = self.clock()

        async def count(state: BudgetState) -> int:
            await state.expire(now)
            return await state.open_reservations()

        held, _ = await self._use(count)
        return held

    def health(self) -> dict[str, object]:
        """For `/health`: where the counters live and whether that is degraded."""
        return {
            "budget_state": "redis" if self.shared else "in-process",
            "degraded": self.degraded,
            "on_redis_down": self.on_redis_down if self.shared else None,
        }


__all__ = ["BudgetExceededError", "BudgetGate", "OnRedisDown", "redis_down"]
