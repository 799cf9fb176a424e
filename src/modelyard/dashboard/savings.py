"""Savings against a counterfactual: what the same traffic would have cost on a
reference model, next to what it did cost.

Which records count (the same rule as the evaluation harness's "answered"):

- **Actual cost** is every billed record in the date range: served answers *and*
  everything else the routing spent on the way (failed attempts before a fallback,
  hedges that lost the race, specialists that escalated, cascade hops and judges,
  council members, interrupted calls at their estimate). Routing is charged for its
  own overhead; shadow answers (never billed) are left out.
- **Counterfactual cost** is the *served answers only* (status `ok`, role none or
  `answer`: one per answered request), each priced with its own real token counts
  (input, cached input, output) at the reference model's catalog list prices. A
  request that failed everywhere has no served answer, so it adds to the actual
  cost and nothing to the counterfactual: failures cost extra, never save.
- **Reference model**: the one the operator picks, or by default each request's own
  `reference_model` (the most expensive qualified candidate of its decision,
  `ledger.derived`). A served answer with no reference (a decision that listed no
  candidates) or one the catalog no longer prices counts at its own actual cost:
  no saving is claimed for it.

Savings = counterfactual − actual; share = savings / counterfactual. Both can be
negative (routing that cost more than the reference would have). Token counts are
what the routed model used: the reference model's tokenizer and answer length
would differ somewhat; tiered prices (very long prompts) are taken at base tier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.catalog.prices import MILLION, Prices
from modelyard.dashboard.params import DateRange
from modelyard.dashboard.sql import bucket_of, r, rolled_up, usd
from modelyard.ledger.rollup import NONE

# The operator's choice meaning "each request's own most expensive qualified model".
PER_DECISION: Final = "per-decision"


def served() -> ColumnElement[bool]:
    """Roll-up rows of served answers: one per answered request (role none or `answer`)."""
    return and_(r.status == "ok", r.role.in_((NONE, "answer")))


def _when_served(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.sum(case((served(), column), else_=0))


@dataclass(frozen=True, slots=True)
class Savings:
    reference: str
    actual_usd: Decimal
    served_usd: Decimal
    counterfactual_usd: Decimal
    answered: int
    unpriced: int
    labels: list[str]
    actual_series: list[float]
    counterfactual_series: list[float]

    @property
    def saved_usd(self) -> Decimal:
        return self.counterfactual_usd - self.actual_usd

    @property
    def overhead_usd(self) -> Decimal:
        """What the attempts that were not served answers cost (fallbacks, hedges...)."""
        return self.actual_usd - self.served_usd

    @property
    def share(self) -> Decimal | None:
        """Savings as a fraction of the counterfactual; None when that is zero."""
        if not self.counterfactual_usd:
            return None
        return self.saved_usd / self.counterfactual_usd


def price(prices: Prices, input_tokens: int, cached: int, output: int) -> Decimal:
    """Dollars for summed token counts at list prices, exactly (not rounded: linear
    in the counts, so pricing a sum equals summing per-record prices)."""
    uncached = max(input_tokens - cached, 0)
    total = uncached * prices.input + cached * prices.cached_input + output * prices.output
    return total / MILLION


async def savings(
    db: AsyncEngine, span: DateRange, reference: str, prices: Mapping[str, Prices]
) -> Savings:
    """Savings in `span` against `reference` (a model id in `prices`, or PER_DECISION)."""
    bucket = bucket_of(db.dialect.name, span.bucket, r.hour)
    ref = r.reference_model
    # One pass over the roll-up: every row's cost is actual spend; the served rows'
    # calls, tokens and cost, per reference model, price the counterfactual.
    stmt = (
        select(
            bucket,
            ref,
            func.sum(r.cost_nanousd),
            _when_served(r.calls),
            _when_served(r.input_tokens),
            _when_served(r.cached_input_tokens),
            _when_served(r.output_tokens),
            _when_served(r.cost_nanousd),
        )
        .where(rolled_up(span))
        .group_by(bucket, ref)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    actual: dict[str, Decimal] = {}
    counter: dict[str, Decimal] = {}
    answered = unpriced = 0
    served_usd = Decimal(0)
    for label, stored_ref, all_nanos, count, tokens_in, cached, tokens_out, nanos in rows:
        actual[label] = actual.get(label, Decimal(0)) + usd(all_nanos)
        if not count:
            continue
        per_decision = None if stored_ref == NONE else stored_ref
        model = per_decision if reference == PER_DECISION else reference
        own_cost = usd(nanos)
        answered += int(count)
        served_usd += own_cost
        if model is None or model not in prices:
            unpriced += int(count)
            cost = own_cost
        else:
            cost = price(prices[model], int(tokens_in or 0), int(cached or 0), int(tokens_out or 0))
        counter[label] = counter.get(label, Decimal(0)) + cost
    labels = sorted(set(actual) | set(counter))
    return Savings(
        reference=reference,
        actual_usd=sum(actual.values(), Decimal(0)),
        served_usd=served_usd,
        counterfactual_usd=sum(counter.values(), Decimal(0)),
        answered=answered,
        unpriced=unpriced,
        labels=labels,
        actual_series=[float(actual.get(label, 0)) for label in labels],
        counterfactual_series=[float(counter.get(label, 0)) for label in labels],
    )
