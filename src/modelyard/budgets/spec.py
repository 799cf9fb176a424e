"""Budgets as data: who a budget covers, how much, over which period, and what an
attempt reserves against it.

A budget is `(scope, limit, period, on_exhaust)`. Periods are UTC calendar periods
(`day`, `week` starting Monday, `month`) or rolling windows (`24h`, `7d`, `90m`).
Spend is counted in integer nano-dollars in *buckets*: one per calendar period, or
sixty per rolling window (a bucket leaves the window whole, so a rolling window
counts spend a little longer than its length, never shorter: it can only err on
the side of refusing). The budget text is `AMOUNT/PERIOD`, e.g. `50/month`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

from modelyard.attempts import reservation
from modelyard.catalog.cards import ModelCard
from modelyard.ledger.migrations import nanousd_to_usd, usd_to_nanousd
from modelyard.ledger.records import SpendScope
from modelyard.types import Usage

OnExhaust = Literal["downgrade", "refuse"]
CALENDAR: Final = ("day", "week", "month")
ROLLING_BUCKETS: Final = 60
# Far above any real budget, far below the 64-bit nano-dollar range (9.2e9 dollars).
MAX_BUDGET_USD: Final = Decimal(1_000_000_000)
_ROLLING: Final = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNIT_S: Final = {"m": 60, "h": 3600, "d": 86400}
# The prompt is counted offline; an upstream may count a few more tokens. Reserving
# this margin on the prompt keeps a settled cost within its reservation.
PROMPT_MARGIN: Final = Decimal("1.1")
PROMPT_SLACK_TOKENS: Final = 16


class BudgetSpecError(ValueError):
    """A budget text or value that cannot be a budget; the message says why."""


@dataclass(frozen=True, slots=True)
class Window:
    """One budget at one instant: the bucket keys whose sum is its spend, the key
    this instant's spend goes to, and when the oldest counted spend drops out."""

    bid: str
    label: str
    limit_nanos: int
    sum_keys: tuple[str, ...]
    add_key: str
    bucket_bounds: tuple[tuple[datetime, datetime], ...]
    ttl_s: int
    resets_at: datetime
    on_exhaust: OnExhaust


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending ceiling for one scope over one period (see the module docstring)."""

    scope: SpendScope
    limit_usd: Decimal
    period: str
    on_exhaust: OnExhaust = "downgrade"

    @property
    def bid(self) -> str:
        """A stable identity: scope, subject and period."""
        return f"{self.scope.kind}:{self.scope.subject}:{self.period}"

    @property
    def label(self) -> str:
        """How messages name it: `team support (500/month)`."""
        who = "global" if self.scope.kind == "global" else f"{self.scope.kind} {self.scope.subject}"
        return f"{who} ({self.limit_usd.normalize():f}/{self.period})"

    def window(self, now: datetime) -> Window:
        """The buckets this budget counts at `now`."""
        limit = usd_to_nanousd(self.limit_usd)
        if self.period in CALENDAR:
            start, end = calendar_bounds(self.period, now)
            key = f"{self.bid}@{start:%Y%m%d}"
            ttl = int((end - start).total_seconds()) + 86400
            return Window(
                self.bid, self.label, limit, (key,), key, ((start, end),), ttl, end, self.on_exhaust
            )
        size = rolling_seconds(self.period) // ROLLING_BUCKETS
        size = max(size, 1)
        idx = math.floor(now.timestamp() / size)
        first = idx - ROLLING_BUCKETS + 1
        keys = tuple(f"{self.bid}@{i}" for i in range(first, idx + 1))
        bounds = tuple((_epoch(i * size), _epoch((i + 1) * size)) for i in range(first, idx + 1))
        ttl = size * (ROLLING_BUCKETS + 1)
        return Window(
            self.bid,
            self.label,
            limit,
            keys,
            keys[-1],
            bounds,
            ttl,
            _epoch((first + 1) * size),
            self.on_exhaust,
        )


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def calendar_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the UTC day, ISO week (Monday) or month holding `now`."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def rolling_seconds(period: str) -> int:
    """The length of a rolling period such as `24h`, `7d` or `90m`, in seconds."""
    match = _ROLLING.fullmatch(period)
    if match is None:
        raise BudgetSpecError(
            f"unknown budget period {period!r}: use day, week, month, or a rolling "
            "window such as 90m, 24h or 7d"
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def check_period(period: str) -> str:
    """`period` if it is one (calendar or rolling); else a `BudgetSpecError`."""
    if period not in CALENDAR:
        seconds = rolling_seconds(period)
        if seconds < ROLLING_BUCKETS:
            raise BudgetSpecError(f"a rolling budget window must be at least 1m, got {period!r}")
    return period


def parse_amount(text: str) -> Decimal:
    """A budget amount in dollars: finite, positive or zero, at most $1e9."""
    try:
        amount = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise BudgetSpecError(f"budget amount {text!r} is not a number of dollars") from None
    if not amount.is_finite():
        raise BudgetSpecError(f"budget amount {text!r} is not a finite number")
    if amount < 0:
        raise BudgetSpecError(f"budget amount {text!r} is negative")
    if amount > MAX_BUDGET_USD:
        raise BudgetSpecError(f"budget amount {text!r} is above the maximum ($1e9)")
    return nanousd_to_usd(usd_to_nanousd(amount))


def parse_budget(text: str) -> tuple[Decimal, str]:
    """`AMOUNT/PERIOD` (e.g. `50/month`, `2.5/24h`) as (dollars, period)."""
    if len(text) > 64 or text.count("/") != 1:
        raise BudgetSpecError(
            f"budget {text[:64]!r} must look like AMOUNT/PERIOD, e.g. 50/month or 5/24h"
        )
    amount, period = text.split("/")
    return parse_amount(amount), check_period(period.strip())


def budget_cost(card: ModelCard, prompt_tokens: int, max_output: int | None) -> Decimal:
    """What an attempt on `card` reserves against budgets: the write-ahead estimate
    (prompt plus the output cap, else the card's maximum) with a margin on the
    prompt, priced at the card's prices."""
    base = reservation(card, prompt_tokens, max_output)
    margin = int(base.input_tokens * PROMPT_MARGIN) + PROMPT_SLACK_TOKENS
    return card.prices.cost(Usage(input_tokens=margin, output_tokens=base.output_tokens))


def prompt_cost(card: ModelCard, prompt_tokens: int) -> Decimal:
    """The prompt's part of `budget_cost` (what is left pays for output)."""
    base = reservation(card, prompt_tokens, 1)
    margin = int(base.input_tokens * PROMPT_MARGIN) + PROMPT_SLACK_TOKENS
    return card.prices.cost(Usage(input_tokens=margin))
