"""The review queue: disputed council results, waiting for a person.

Stored in the ledger's own database (table `reviews`, migration `m008_reviews`), so
a review survives restarts exactly as billing does; an in-memory ledger gets an
in-memory queue (tests, replays). `reviews_for(ledger)` returns the queue of a
ledger, one per ledger object.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from sqlalchemy import insert, select, update

from modelyard.ledger.memory import storable, storable_json
from modelyard.ledger.migrations import as_utc, nanousd_to_usd, reviews, usd_to_nanousd
from modelyard.ledger.sql import SqlLedger
from modelyard.types import Money

ReviewStatus = Literal["pending", "accepted", "rejected", "edited"]
STATUSES: tuple[ReviewStatus, ...] = ("pending", "accepted", "rejected", "edited")


class ReviewError(LookupError):
    """No such review, or it was resolved already."""


@dataclass(frozen=True, slots=True)
class Review:
    """One flagged council result. `resolution` is the reviewer's edited answer."""

    id: str
    request_id: str
    decision_id: str
    policy: str
    status: ReviewStatus
    request: dict[str, Any]
    members: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    answer: str | None
    agreement: float
    reason: str
    cost_usd: Money
    created_at: datetime
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["cost_usd"] = str(self.cost_usd)
        out["created_at"] = self.created_at.isoformat()
        out["resolved_at"] = self.resolved_at.isoformat() if self.resolved_at else None
        out["object"] = "review"
        return out


class ReviewStore(Protocol):
    """Where reviews live; every call commits before it returns."""

    async def add(self, review: Review) -> None: ...

    async def get(self, review_id: str) -> Review: ...

    async def list(
        self, *, status: ReviewStatus | None = None, limit: int = 100
    ) -> Sequence[Review]: ...

    async def resolve(
        self,
        review_id: str,
        status: ReviewStatus,
        by: str,
        at: datetime,
        resolution: str | None = None,
    ) -> Review: ...


def _normalised(review: Review) -> Review:
    return dataclasses.replace(
        review,
        request=storable_json(review.request),
        members=storable_json(review.members),
        claims=storable_json(review.claims),
        answer=None if review.answer is None else storable(review.answer),
        reason=storable(review.reason),
        created_at=as_utc(review.created_at, "created_at"),
        cost_usd=nanousd_to_usd(usd_to_nanousd(Decimal(review.cost_usd))),
    )


def _check_resolution(review: Review, status: ReviewStatus) -> None:
    if status == "pending":
        raise ValueError("a review is resolved as accepted, rejected or edited")
    if review.status != "pending":
        raise ReviewError(
            f"review {review.id} was already resolved ({review.status} by {review.resolved_by})"
        )


def _resolution(
    status: ReviewStatus, by: str, at: datetime, resolution: str | None
) -> dict[str, Any]:
    """The columns a resolution sets, storable in either store."""
    return {
        "status": status,
        "resolved_by": storable(by),
        "resolved_at": as_utc(at, "resolved_at"),
        "resolution": None if resolution is None else storable(resolution),
    }


class MemoryReviews:
    """Reviews in a dict: lost with the process (for in-memory ledgers)."""

    def __init__(self) -> None:
        self._items: dict[str, Review] = {}

    async def add(self, review: Review) -> None:
        self._items[review.id] = _normalised(review)

    async def get(self, review_id: str) -> Review:
        try:
            return self._items[review_id]
        except KeyError:
            raise ReviewError(f"no review {review_id!r}") from None

    async def list(
        self, *, status: ReviewStatus | None = None, limit: int = 100
    ) -> Sequence[Review]:
        items = [r for r in self._items.values() if status is None or r.status == status]
        return sorted(items, key=lambda r: (r.created_at, r.id))[:limit]

    async def resolve(
        self,
        review_id: str,
        status: ReviewStatus,
        by: str,
        at: datetime,
        resolution: str | None = None,
    ) -> Review:
        review = await self.get(review_id)
        _check_resolution(review, status)
        done = dataclasses.replace(review, **_resolution(status, by, at, resolution))
        self._items[review_id] = done
        return done


class SqlReviews:
    """Reviews in the SQL ledger's database (SQLite or PostgreSQL)."""

    def __init__(self, ledger: SqlLedger) -> None:
        self._ledger = ledger

    async def add(self, review: Review) -> None:
        stored = _normalised(review)
        row = {f.name: getattr(stored, f.name) for f in dataclasses.fields(stored)}
        row["cost_nanousd"] = usd_to_nanousd(row.pop("cost_usd"))
        async with self._ledger.engine.begin() as conn:
            await conn.execute(insert(reviews).values(**row))

    async def get(self, review_id: str) -> Review:
        async with self._ledger.engine.connect() as conn:
            row = (
                (await conn.execute(select(reviews).where(reviews.c.id == review_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise ReviewError(f"no review {review_id!r}")
        return _from_row(row)

    async def list(
        self, *, status: ReviewStatus | None = None, limit: int = 100
    ) -> Sequence[Review]:
        stmt = select(reviews).order_by(reviews.c.created_at, reviews.c.id).limit(limit)
        if status is not None:
            stmt = stmt.where(reviews.c.status == status)
        async with self._ledger.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_from_row(r) for r in rows]

    async def resolve(
        self,
        review_id: str,
        status: ReviewStatus,
        by: str,
        at: datetime,
        resolution: str | None = None,
    ) -> Review:
        review = await self.get(review_id)
        _check_resolution(review, status)
        values = _resolution(status, by, at, resolution)
        # Only a pending review changes: two reviewers racing cannot both resolve it.
        stmt = (
            update(reviews)
            .where(reviews.c.id == review_id, reviews.c.status == "pending")
            .values(**values)
        )
        async with self._ledger.engine.begin() as conn:
            changed = (await conn.execute(stmt)).rowcount
        if not changed:
            _check_resolution(await self.get(review_id), status)
        return await self.get(review_id)


def _from_row(row: Any) -> Review:
    data = {f.name: row[f.name] for f in dataclasses.fields(Review) if f.name != "cost_usd"}
    return Review(**data, cost_usd=nanousd_to_usd(row["cost_nanousd"]))


_MEMORY: weakref.WeakKeyDictionary[Any, MemoryReviews] = weakref.WeakKeyDictionary()


def reviews_for(ledger: Any) -> ReviewStore:
    """The review queue stored with `ledger`: its database for a SQL ledger, else
    an in-memory queue kept as long as the ledger object lives."""
    if isinstance(ledger, SqlLedger):
        return SqlReviews(ledger)
    store = _MEMORY.get(ledger)
    if store is None:
        store = _MEMORY[ledger] = MemoryReviews()
    return store
