"""The council's review queue in the ledger database (migration m008_reviews): added,
listed, resolved once with who and when, and still there after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from modelyard.council.reviews import Review, ReviewError, reviews_for
from modelyard.ledger.migrations import MIGRATIONS
from tests.ledger.conftest import Backend

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def review(review_id: str, at: datetime = T0) -> Review:
    return Review(
        id=review_id,
        request_id=f"req-{review_id}",
        decision_id="dec_1",
        policy="council",
        status="pending",
        request={"model": "council", "messages": [{"role": "user", "content": "Q\u0000?"}]},
        members=[{"model": "a", "answer": "A", "cost_usd": "0.000001000"}],
        claims=[{"text": "final answer: A", "supporting": ["a"], "contradicting": ["b"]}],
        answer="A",
        agreement=0.5,
        reason="1 of 2 members answer 'A'",
        cost_usd=Decimal("0.000123456"),
        created_at=at,
    )


def test_m008_reviews_is_released_after_the_write_ahead_migration() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert names.index("m005_write_ahead") < names.index("m008_reviews")


async def test_reviews_are_added_listed_and_resolved_once(backend: Backend) -> None:
    ledger = backend.make()
    await ledger.open()
    try:
        store = reviews_for(ledger)
        await store.add(review("r2", T0 + timedelta(seconds=1)))
        await store.add(review("r1"))
        assert [r.id for r in await store.list()] == ["r1", "r2"]
        got = await store.get("r1")
        assert got.cost_usd == Decimal("0.000123456")
        # NUL cannot be stored in PostgreSQL: escaped on the way in, like call records.
        assert got.request["messages"][0]["content"] == "Q\ufffd?"
        at = datetime(2026, 11, 29, 5, 0, tzinfo=timezone(timedelta(hours=2)))
        done = await store.resolve("r1", "edited", "alice", at, "B")
        assert (done.status, done.resolved_by, done.resolution) == ("edited", "alice", "B")
        assert done.resolved_at == at.astimezone(UTC)
        assert [r.id for r in await store.list(status="pending")] == ["r2"]
        with pytest.raises(ReviewError, match="already resolved \\(edited by alice\\)"):
            await store.resolve("r1", "accepted", "bob", at)
        with pytest.raises(ReviewError, match="no review 'nope'"):
            await store.get("nope")
        with pytest.raises(ValueError, match="resolved as accepted"):
            await store.resolve("r2", "pending", "bob", at)
    finally:
        await ledger.close()


async def test_reviews_survive_a_restart(sql_backend: Backend) -> None:
    first = sql_backend.make()
    await first.open()
    await reviews_for(first).add(review("r1"))
    await first.close()
    second = sql_backend.make()
    await second.open()
    try:
        store = reviews_for(second)
        (got,) = await store.list(status="pending")
        assert (got.id, got.answer, got.created_at) == ("r1", "A", T0)
        await store.resolve("r1", "accepted", "carol", T0 + timedelta(hours=1))
    finally:
        await second.close()
    third = sql_backend.make()
    await third.open()
    try:
        got = await reviews_for(third).get("r1")
        assert (got.status, got.resolved_by) == ("accepted", "carol")
        assert got.resolved_at == T0 + timedelta(hours=1)
    finally:
        await third.close()
