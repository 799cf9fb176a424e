"""The decision explorer: recent attempts, filtered and paged; and one request's story.

The list is one row per ledger record (attempt), newest first, so a filter on
status `error` finds the failed attempts themselves; each row links to its
request. Paging is by keyset (`started_at`, `id`), not OFFSET, so page 1,000 costs
what page 1 does: one index range read of `PAGE_SIZE` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.dashboard.params import MAX_FILTER_CHARS, BadParameter
from modelyard.dashboard.sql import c, usd
from modelyard.ledger.migrations import as_utc

PAGE_SIZE: Final = 50
_COLUMNS: Final = (
    c.id,
    c.request_id,
    c.decision_id,
    c.started_at,
    c.policy,
    c.model_id,
    c.deployment,
    c.attempt,
    c.step,
    c.role,
    c.status,
    c.input_tokens,
    c.output_tokens,
    c.cost_nanousd,
    c.latency_ms,
    c.error_class,
    c.error_message,
    c.key_id,
    c.team,
    c.task,
    c.confidence,
    c.budget_note,
    c.reasons,
)


@dataclass(frozen=True, slots=True)
class Filters:
    model: str | None = None
    status: str | None = None
    key: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.model is not None:
            out.append(c.model_id == self.model)
        if self.status is not None:
            out.append(c.status == self.status)
        if self.key is not None:
            out.append(c.key_id == self.key)
        return out


@dataclass(frozen=True, slots=True)
class Attempt:
    """One ledger record, as the explorer shows it."""

    id: str
    request_id: str
    decision_id: str
    started_at: datetime
    policy: str
    model_id: str
    deployment: str
    attempt: int
    step: int | None
    role: str | None
    status: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: float
    error_class: str | None
    error_message: str | None
    key_id: str | None
    team: str | None
    task: str | None
    confidence: float | None
    budget_note: str | None
    reasons: Mapping[str, Any] = field(repr=False)

    @property
    def chosen(self) -> str | None:
        """The decision's first choice (rank 1)."""
        candidates = self.candidates
        return candidates[0].get("model") if candidates else None

    @property
    def candidates(self) -> list[Mapping[str, Any]]:
        found = self.reasons.get("candidates")
        return [x for x in found if isinstance(x, Mapping)] if isinstance(found, list) else []

    @property
    def rejected(self) -> list[Mapping[str, Any]]:
        found = self.reasons.get("rejected")
        return [x for x in found if isinstance(x, Mapping)] if isinstance(found, list) else []


def _attempt(row: Any) -> Attempt:
    values = dict(row._mapping)
    values["cost_usd"] = usd(values.pop("cost_nanousd"))
    if not isinstance(values["reasons"], Mapping):
        values["reasons"] = {}
    return Attempt(**values)


def cursor_of(attempt: Attempt) -> str:
    """The `before` value that continues the list after `attempt`."""
    return f"{attempt.started_at.isoformat()}|{attempt.id}"


def parse_cursor(value: str | None) -> tuple[datetime, str] | None:
    if value is None or not value.strip():
        return None
    at, sep, record_id = value.strip().partition("|")
    try:
        when = as_utc(datetime.fromisoformat(at)) if sep else None
    except ValueError:
        when = None
    if when is None or not record_id or len(record_id) > MAX_FILTER_CHARS:
        raise BadParameter("'before' is not a page cursor from this dashboard; start again")
    return when, record_id


async def recent(
    db: AsyncEngine, filters: Filters, before: tuple[datetime, str] | None
) -> tuple[list[Attempt], str | None]:
    """One page of attempts, newest first, and the cursor of the next page (None: last)."""
    conditions = filters.where()
    if before is not None:
        at, record_id = before
        conditions.append(or_(c.started_at < at, and_(c.started_at == at, c.id < record_id)))
    stmt = (
        select(*_COLUMNS)
        .where(*conditions)
        .order_by(c.started_at.desc(), c.id.desc())
        .limit(PAGE_SIZE + 1)
    )
    async with db.connect() as conn:
        rows = [_attempt(r) for r in await conn.execute(stmt)]
    more = len(rows) > PAGE_SIZE
    page = rows[:PAGE_SIZE]
    return page, cursor_of(page[-1]) if more and page else None


@dataclass(frozen=True, slots=True)
class DecisionStory:
    """One decision of a request (a cascade's judge is a decision of its own) and the
    attempts it caused, in order."""

    decision_id: str
    reasons: Mapping[str, Any]
    attempts: list[Attempt]


@dataclass(frozen=True, slots=True)
class RequestStory:
    request_id: str
    decisions: list[DecisionStory]

    @property
    def attempts(self) -> list[Attempt]:
        return [a for d in self.decisions for a in d.attempts]

    @property
    def cost_usd(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts), Decimal(0))


async def story(db: AsyncEngine, request_id: str) -> RequestStory | None:
    """Every record of `request_id` grouped by decision, or None if there is none."""
    stmt = (
        select(*_COLUMNS)
        .where(c.request_id == request_id)
        .order_by(c.started_at, c.step, c.attempt, c.id)
    )
    async with db.connect() as conn:
        attempts = [_attempt(r) for r in await conn.execute(stmt)]
    if not attempts:
        return None
    return RequestStory(request_id, _by_decision(attempts))


def _by_decision(attempts: Sequence[Attempt]) -> list[DecisionStory]:
    order: dict[str, DecisionStory] = {}
    for a in attempts:
        if a.decision_id not in order:
            order[a.decision_id] = DecisionStory(a.decision_id, a.reasons, [])
        order[a.decision_id].attempts.append(a)
    return list(order.values())
