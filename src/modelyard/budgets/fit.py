"""Downgrade before refuse: fit a ranking into the caller's budget headroom.

Pure: the router calls `fit_ranking` with an `Allowance` snapshot (taken by the
engine before planning, like the health snapshot), so the same request and the same
snapshot give the same decision. The rule:

1. the ranked first choice fits (its reservation is within the tightest budget's
   headroom): keep the ranking, dropping fallbacks that could not be reserved;
2. it does not, and the budget says `downgrade`: the best-ranked qualified models
   that fit, with a note ("downgraded: team support (500/month) has $0.004 left");
3. none fits uncapped and the key allows capping: the best-ranked model whose
   prompt fits with at least `MIN_CAPPED_OUTPUT` output tokens, `max_tokens`
   capped to what the headroom pays for;
4. otherwise `BudgetExceededError` (402, `budget_exceeded`), naming the budget and
   when it resets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Final, TypeVar

from modelyard.budgets.spec import OnExhaust, budget_cost, prompt_cost
from modelyard.catalog.cards import ModelCard
from modelyard.errors import BudgetExceededError
from modelyard.types import Requirements

MIN_CAPPED_OUTPUT: Final = 16
_C = TypeVar("_C")


@dataclass(frozen=True, slots=True)
class Allowance:
    """What the caller may use right now: a planning input, like the health snapshot.

    `remaining_usd` is the tightest applicable budget's headroom (None: no budget
    applies); `models` the key's allowed model globs (empty: all)."""

    remaining_usd: Decimal | None = None
    budget: str = ""
    resets_at: datetime | None = None
    on_exhaust: OnExhaust = "downgrade"
    models: tuple[str, ...] = ()
    key_name: str | None = None
    cap_max_tokens: bool = True

    def allows(self, model_id: str) -> bool:
        return not self.models or any(fnmatchcase(model_id, g) for g in self.models)

    def resets(self) -> str:
        return self.resets_at.isoformat().replace("+00:00", "Z") if self.resets_at else "never"


@dataclass(frozen=True, slots=True)
class Fitted:
    """The ranking that fits, why it changed, and the output cap if one was needed."""

    kept: list[int]
    dropped: list[tuple[int, str]]
    note: str | None = None
    cap: int | None = None


def fit_ranking(cards: list[ModelCard], req: Requirements, allowance: Allowance) -> Fitted:
    """Indexes into `cards` (ranked best first) to keep, per the module docstring."""
    left = allowance.remaining_usd
    if left is None:
        return Fitted(list(range(len(cards))), [])
    costs = [budget_cost(c, req.prompt_tokens, req.max_output_tokens) for c in cards]
    fits = [i for i, cost in enumerate(costs) if cost <= left]
    dropped = [
        (i, f"reservation ${costs[i]:.6f} exceeds {allowance.budget}'s ${left:.6f} left")
        for i in range(len(cards))
        if i not in fits
    ]
    if fits and fits[0] == 0:
        return Fitted(fits, dropped)
    if allowance.on_exhaust == "downgrade":
        if fits:
            note = (
                f"downgraded: {allowance.budget} has ${left:.6f} left; "
                f"{cards[0].id} would reserve ${costs[0]:.6f}"
            )
            return Fitted(fits, dropped, note)
        capped = _capped(cards, req, left, allowance)
        if capped is not None:
            return capped
    cheapest = min(costs)
    raise BudgetExceededError(
        f"budget exceeded: {allowance.budget} has ${max(left, Decimal(0)):.6f} left and the "
        f"cheapest qualified model needs ${cheapest:.6f} reserved; it resets at "
        f"{allowance.resets()}",
        budget=allowance.budget,
        resets_at=allowance.resets(),
    )


def _capped(
    cards: list[ModelCard], req: Requirements, left: Decimal, allowance: Allowance
) -> Fitted | None:
    if not allowance.cap_max_tokens:
        return None
    for i, card in enumerate(cards):
        prompt_only = prompt_cost(card, req.prompt_tokens)
        price = card.prices.output / Decimal(1_000_000)
        if price <= 0:
            continue
        cap = int((left - prompt_only) / price)
        limit = req.max_output_tokens or card.max_output_tokens
        cap = min(cap, limit - 1) if limit else cap
        # Re-check with the exact reservation formula (rounding, margins).
        while cap >= MIN_CAPPED_OUTPUT and budget_cost(card, req.prompt_tokens, cap) > left:
            cap -= 1
        if cap >= MIN_CAPPED_OUTPUT:
            note = f"capped max_tokens to {cap}: {allowance.budget} has ${left:.6f} left" + (
                f"; downgraded from {cards[0].id}" if i else ""
            )
            others = [
                (j, "not kept: max_tokens was capped for another model")
                for j in range(len(cards))
                if j != i
            ]
            return Fitted([i], others, note, cap)
    return None
