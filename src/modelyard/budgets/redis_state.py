"""`BudgetState` in Redis: one set of counters for every gateway replica.

Each operation is one Lua script, so a reservation's check-and-add across all the
budgets of a call is atomic however many replicas race for the last dollar.
Keys (under a configurable prefix, default `modelyard:`):

    init:{bid}          the window's counters were rebuilt from the ledger
    spent:{bucket}      nano-dollars settled in one bucket (TTL: the period + a day)
    reserved:{bid}      nano-dollars held by live reservations
    res:{rid}           one reservation: amount and the (bid, bucket) pairs it holds
    res-expiry          sorted set: reservation id by expiry time (epoch ms)
    rate:{key}:{minute} requests and tokens this minute (TTL 2 min)

An expired reservation (its replica died) is converted to spend at its amount by
whichever script runs next (`expire`), so nothing stays locked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from modelyard.budgets.spec import Window
from modelyard.budgets.state import NeedsInit, Refused

_EXPIRE_FN: Final = """
local function expire(p, now)
local dead = redis.call('ZRANGEBYSCORE', p..'res-expiry', '-inf', now, 'LIMIT', 0, 200)
for _, rid in ipairs(dead) do
  local r = redis.call('HMGET', p..'res:'..rid, 'amount', 'where')
  if r[1] then
    local amount = tonumber(r[1])
    for bid, key in string.gmatch(r[2], '([^\\n]+)\\t([^\\n]+)') do
      redis.call('DECRBY', p..'reserved:'..bid, amount)
      redis.call('INCRBY', p..'spent:'..key, amount)
    end
  end
  redis.call('DEL', p..'res:'..rid)
  redis.call('ZREM', p..'res-expiry', rid)
end
return #dead
end
"""

_EXPIRE: Final = _EXPIRE_FN + "return expire(ARGV[1], tonumber(ARGV[2]))\n"

# ARGV: prefix, now_ms, then per window: bid, limit, nsum, sum keys...
_LEFT: Final = """
local function left_of(p, argv, i)
  local bid, limit, n = argv[i], tonumber(argv[i + 1]), tonumber(argv[i + 2])
  local spent = 0
  for j = 1, n do
    spent = spent + tonumber(redis.call('GET', p..'spent:'..argv[i + 2 + j]) or '0')
  end
  local held = tonumber(redis.call('GET', p..'reserved:'..bid) or '0')
  return limit - spent - held, i + 3 + n
end
"""

_REMAINING: Final = (
    _LEFT
    + """
local p = ARGV[1]
local out, i = {}, 3
while i <= #ARGV do
  local left
  left, i = left_of(p, ARGV, i)
  table.insert(out, left)
end
return out
"""
)

# ARGV: prefix, now_ms, rid, amount, expires_ms, nwin, then per window:
# bid, limit, nsum, sum keys..., add key, ttl
_RESERVE: Final = (
    _LEFT
    + _EXPIRE_FN
    + """
local p, rid, amount, expires = ARGV[1], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
-- Idempotent: a retried reserve (its reply timed out) must not hold twice.
if redis.call('EXISTS', p..'res:'..rid) == 1 then return {1} end
-- Expired reservations first (one round trip for both).
expire(p, tonumber(ARGV[2]))
local wins, i = {}, 7
for w = 1, tonumber(ARGV[6]) do
  local bid = ARGV[i]
  if redis.call('EXISTS', p..'init:'..bid) == 0 then return {-1, w - 1} end
  local left
  left, i = left_of(p, ARGV, i)
  if amount > left then return {0, w - 1, left} end
  table.insert(wins, {bid, ARGV[i], ARGV[i + 1]})
  i = i + 2
end
local where = {}
for _, w in ipairs(wins) do
  redis.call('INCRBY', p..'reserved:'..w[1], amount)
  if redis.call('EXISTS', p..'spent:'..w[2]) == 0 then
    redis.call('SET', p..'spent:'..w[2], 0, 'EX', w[3])
  end
  table.insert(where, w[1]..'\\t'..w[2])
end
redis.call('HSET', p..'res:'..rid, 'amount', amount, 'where', table.concat(where, '\\n'))
redis.call('ZADD', p..'res-expiry', expires, rid)
return {1}
"""
)

# ARGV: prefix, rid, cost
_SETTLE: Final = """
local p, rid, cost = ARGV[1], ARGV[2], tonumber(ARGV[3])
local r = redis.call('HMGET', p..'res:'..rid, 'amount', 'where')
if not r[1] then return 0 end
local amount = tonumber(r[1])
for bid, key in string.gmatch(r[2], '([^\\n]+)\\t([^\\n]+)') do
  redis.call('DECRBY', p..'reserved:'..bid, amount)
  redis.call('INCRBY', p..'spent:'..key, cost)
end
redis.call('DEL', p..'res:'..rid)
redis.call('ZREM', p..'res-expiry', rid)
return 1
"""

# ARGV: prefix, bid, ttl, then pairs: bucket, nanos
_INIT: Final = """
local p, bid, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', p..'init:'..bid) == 1 then return 0 end
for i = 4, #ARGV, 2 do
  redis.call('SET', p..'spent:'..ARGV[i], ARGV[i + 1], 'EX', ttl)
end
redis.call('SET', p..'init:'..bid, 1)
return 1
"""

# KEYS: none. ARGV: prefix, key, minute, rpm (-1: none), tpm (-1: none), tokens
_RATE: Final = """
local p, key, minute = ARGV[1], ARGV[2], ARGV[3]
local rpm, tpm, tokens = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local rk, tk = p..'rate:'..key..':r:'..minute, p..'rate:'..key..':t:'..minute
local r = tonumber(redis.call('GET', rk) or '0')
local t = tonumber(redis.call('GET', tk) or '0')
if (rpm >= 0 and r + 1 > rpm) or (tpm >= 0 and t + tokens > tpm) then return 0 end
redis.call('INCR', rk)
redis.call('INCRBY', tk, tokens)
redis.call('EXPIRE', rk, 120)
redis.call('EXPIRE', tk, 120)
return 1
"""


class RedisBudgets:
    """`BudgetState` over a `redis.asyncio.Redis` client (see the module docstring)."""

    def __init__(self, client: Any, prefix: str = "modelyard:") -> None:
        self.client = client
        self.prefix = prefix
        self._expire = client.register_script(_EXPIRE)
        self._remaining = client.register_script(_REMAINING)
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._init = client.register_script(_INIT)
        self._rate = client.register_script(_RATE)

    @staticmethod
    def _window_args(w: Window) -> list[Any]:
        return [w.bid, w.limit_nanos, len(w.sum_keys), *w.sum_keys]

    async def remaining(self, windows: Sequence[Window], now: float) -> list[int]:
        args: list[Any] = [self.prefix, int(now * 1000)]
        for w in windows:
            args.extend(self._window_args(w))
        return [int(v) for v in await self._remaining(args=args)]

    async def reserve(
        self, rid: str, windows: Sequence[Window], amount: int, now: float, ttl_s: float
    ) -> Refused | None:
        args: list[Any] = [
            self.prefix,
            int(now * 1000),
            rid,
            amount,
            int((now + ttl_s) * 1000),
            len(windows),
        ]
        for w in windows:
            args.extend([*self._window_args(w), w.add_key, w.ttl_s])
        result = [int(v) for v in await self._reserve(args=args)]
        if result[0] == -1:
            raise NeedsInit(windows[result[1]].bid)
        if result[0] == 0:
            return Refused(result[1], result[2])
        return None

    async def settle(self, rid: str, cost: int, now: float) -> None:
        await self._settle(args=[self.prefix, rid, cost])

    async def initialise(self, window: Window, spent: Sequence[int]) -> None:
        args: list[Any] = [self.prefix, window.bid, window.ttl_s]
        for key, nanos in zip(window.sum_keys, spent, strict=True):
            args.extend([key, nanos])
        await self._init(args=args)

    async def rate(
        self, key: str, rpm: int | None, tpm: int | None, tokens: int, now: float
    ) -> float | None:
        minute = int(now // 60)
        args = [self.prefix, key, minute, -1 if rpm is None else rpm, -1 if tpm is None else tpm]
        if int(await self._rate(args=[*args, tokens])):
            return None
        return (minute + 1) * 60 - now

    async def expire(self, now: float) -> int:
        return int(await self._expire(args=[self.prefix, int(now * 1000)]))

    async def open_reservations(self) -> int:
        return int(await self.client.zcard(self.prefix + "res-expiry"))
