"""Where budget counters, reservations and rate-limit counters live.

`BudgetState` is the protocol; `InProcessBudgets` keeps them in this process (the
embedded default, and the per-replica fallback when Redis is down);
`budgets.redis_state.RedisBudgets` shares them between replicas. Both implement
the same rules, all amounts in integer nano-dollars, all times wall-clock epoch
seconds (shared by replicas, unlike monotonic clocks):

- `reserve` succeeds only if, for *every* window, spent + reserved + amount <=
  limit; then it adds the amount to each window's reserved total, atomically.
- `settle` moves a reservation to spend at the real cost; `release` is a settle at
  zero (the call never reached the network).
- A reservation older than its TTL (its replica died mid-call) is *converted to
  spend at its full amount*: the attempt was written ahead and the ledger bills it
  at its estimate (interrupted), so counting it as spent never under-counts, and
  nothing stays locked.
- A window's counters are initialised from the ledger before its first
  reservation (`NeedsInit`): at start, for a new budget, or after Redis was
  flushed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from modelyard.budgets.spec import Window


class NeedsInit(Exception):
    """The window's counters must be rebuilt from the ledger first."""

    def __init__(self, bid: str) -> None:
        super().__init__(bid)
        self.bid = bid


@dataclass(frozen=True, slots=True)
class Refused:
    """A reservation that did not fit: which window, and how much it had left."""

    index: int
    left_nanos: int


class BudgetState(Protocol):
    """Shared counters for budgets and rate limits (see the module docstring)."""

    async def remaining(self, windows: Sequence[Window], now: float) -> list[int]:
        """Each window's limit minus its spend and live reservations (may be < 0)."""
        ...

    async def reserve(
        self, rid: str, windows: Sequence[Window], amount: int, now: float, ttl_s: float
    ) -> Refused | None:
        """Reserve `amount` in every window, or in none (raises `NeedsInit`)."""
        ...

    async def settle(self, rid: str, cost: int, now: float) -> None:
        """Turn reservation `rid` into spend of `cost`; unknown ids are ignored."""
        ...

    async def initialise(self, window: Window, spent: Sequence[int]) -> None:
        """Set a window's bucket counters (parallel to `sum_keys`) from the ledger,
        unless another replica did so first."""
        ...

    async def rate(
        self, key: str, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> float | None:
        """Count one request of `tokens` for `key` in this minute; None if within
        the limits, else the seconds until the next minute (nothing is counted)."""
        ...

    async def expire(self, now: float) -> int:
        """Convert reservations past their TTL to spend; how many."""
        ...

    async def open_reservations(self) -> int:
        """How many reservations are still held (expired or not)."""
        ...


@dataclass
class _Reservation:
    amount: int
    where: list[tuple[str, str]]
    expires: float


@dataclass
class InProcessBudgets:
    """`BudgetState` in this process's memory: exact within the process only."""

    spent: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)
    held: dict[str, _Reservation] = field(default_factory=dict)
    minutes: dict[str, int] = field(default_factory=dict)

    async def remaining(self, windows: Sequence[Window], now: float) -> list[int]:
        await self.expire(now)
        return [self._left(w) for w in windows]

    def _left(self, w: Window) -> int:
        spent = sum(self.spent.get(k, 0) for k in w.sum_keys)
        return w.limit_nanos - spent - self.reserved.get(w.bid, 0)

    async def reserve(
        self, rid: str, windows: Sequence[Window], amount: int, now: float, ttl_s: float
    ) -> Refused | None:
        if rid in self.held:
            return None  # idempotent, like the Redis script
        for w in windows:
            if w.bid not in self.ready:
                raise NeedsInit(w.bid)
        await self.expire(now)
        for i, w in enumerate(windows):
            left = self._left(w)
            if amount > left:
                return Refused(i, left)
        for w in windows:
            self.reserved[w.bid] = self.reserved.get(w.bid, 0) + amount
        where = [(w.bid, w.add_key) for w in windows]
        self.held[rid] = _Reservation(amount, where, now + ttl_s)
        return None

    async def settle(self, rid: str, cost: int, now: float) -> None:
        self._close(rid, cost)

    def _close(self, rid: str, cost: int) -> None:
        r = self.held.pop(rid, None)
        if r is None:
            return
        for bid, key in r.where:
            self.reserved[bid] = self.reserved.get(bid, 0) - r.amount
            self.spent[key] = self.spent.get(key, 0) + cost

    async def initialise(self, window: Window, spent: Sequence[int]) -> None:
        if window.bid in self.ready:
            return
        for key, nanos in zip(window.sum_keys, spent, strict=True):
            self.spent[key] = nanos
        self.ready.add(window.bid)

    async def rate(
        self, key: str, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> float | None:
        minute = int(now // 60)
        rk, tk = f"rpm:{key}:{minute}", f"tpm:{key}:{minute}"
        if (rpm is not None and self.minutes.get(rk, 0) + 1 > rpm) or (
            tpm is not None and self.minutes.get(tk, 0) + tokens > tpm
        ):
            return (minute + 1) * 60 - now
        self.minutes = {k: v for k, v in self.minutes.items() if k.endswith(f":{minute}")}
        self.minutes[rk] = self.minutes.get(rk, 0) + 1
        self.minutes[tk] = self.minutes.get(tk, 0) + tokens
        return None

    async def expire(self, now: float) -> int:
        dead = [rid for rid, r in self.held.items() if r.expires <= now]
        for rid in dead:
            self._close(rid, self.held[rid].amount)
        return len(dead)

    async def open_reservations(self) -> int:
        return len(self.held)
