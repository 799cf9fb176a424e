"""The hourly roll-up (m012) equals a GROUP BY over `call_records`, whatever wrote them.

The expected roll-up is computed here in Python from the records the store reads
back, independently of `ledger.rollup`'s SQL: truncated to the UTC hour, missing
values as '', open (`started`) records left out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from modelyard.ledger import CallRecord, SqlLedger
from modelyard.ledger import migrations as migrations_module
from modelyard.ledger.migrations import usd_to_nanousd
from modelyard.ledger.rollup import KEY_COLUMNS, MEASURES, call_rollups

from .conftest import Backend
from .test_ledger import rec
from .test_write_ahead import started

# An hour edge in a zone far from UTC: the hours must be UTC hours.
EDGE = datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
Key = tuple[Any, ...]


def expected(records: Iterable[CallRecord]) -> dict[Key, Counter[str]]:
    out: dict[Key, Counter[str]] = {}
    for r in records:
        if r.status == "started":
            continue
        hour = r.started_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        reference = max(
            r.reasons.get("candidates", []),
            key=lambda c: Decimal(c["expected_cost_usd"]),
            default={"model": ""},
        )["model"]
        task = r.reasons.get("requirements", {}).get("task")
        values = {"task": task, "reference_model": reference, **vars_of(r)}
        key = (hour, *(values[name] or "" for name in KEY_COLUMNS))
        sums = out.setdefault(key, Counter())
        sums["calls"] += 1
        sums["input_tokens"] += r.input_tokens
        sums["output_tokens"] += r.output_tokens
        sums["cached_input_tokens"] += r.cached_input_tokens
        sums["cost_nanousd"] += usd_to_nanousd(r.cost_usd)
    return out


def vars_of(r: CallRecord) -> dict[str, Any]:
    names = ("model_id", "key_id", "team", "role", "status")
    return {name: getattr(r, name) for name in names}


async def stored(store: SqlLedger) -> dict[Key, Counter[str]]:
    t = call_rollups.c
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(call_rollups).where(t.calls != 0))).mappings().all()
    return {
        (row["hour"], *(row[name] for name in KEY_COLUMNS)): Counter(
            {name: int(row[name]) for name in ("calls", *MEASURES) if row[name]}
        )
        for row in rows
    }


def reasons(task: str | None, *models: str) -> dict[str, Any]:
    candidates = [{"model": m, "expected_cost_usd": f"0.00{i + 1}"} for i, m in enumerate(models)]
    return {"requirements": {"task": task}, "candidates": candidates}


def workload() -> list[CallRecord]:
    """Finished records of every final status, with and without key, team, task,
    reference model and role, on both sides of an hour edge."""
    out = []
    statuses = ("ok", "error", "cancelled", "escalated", "shadow", "cached", "ok")
    for i in range(42):
        status = statuses[i % len(statuses)]
        out.append(
            rec(
                f"w{i:02d}",
                status=status,
                started_at=EDGE + timedelta(minutes=25 * (i % 5) - 50),
                model_id=("small", "big")[i % 2],
                key_id=(None, "k'1", "ключ")[i % 3],
                team=(None, "t1")[i % 2 if i % 4 else 0],
                role=(None, "answer", "candidate", "judge")[i % 4],
                reasons=reasons(("intents", None)[i % 2], "small", *(("big",) if i % 3 else ())),
                input_tokens=100 + i,
                output_tokens=10 * i,
                cached_input_tokens=i % 7,
                cost_usd=Decimal(i) / 10**6 + Decimal("0.000000001"),
            )
        )
    return out


async def test_the_rollup_equals_a_group_by_after_a_mixed_workload(sql_backend: Backend) -> None:
    store = sql_backend.make()
    assert isinstance(store, SqlLedger)
    await store.open()
    try:
        # Concurrent writes: the group-commit writer batches them into few transactions.
        await asyncio.gather(*(store.write(r) for r in workload()))
        # Written ahead, then completed in place (twice, concurrently batched).
        ahead = [started(f"a{i}", started_at=EDGE, key_id="k'1") for i in range(6)]
        await asyncio.gather(*(store.start(r) for r in ahead))
        assert await stored(store) == expected(await store.records())
        await asyncio.gather(
            *(
                store.finish(rec(r.id, status="ok", output_tokens=7, key_id="k'1"))
                for r in ahead[:3]
            ),
            store.finish(rec("a3", status="error", input_tokens=0, key_id="k'1")),
            store.discard("a4"),
        )
        # A sweep closes a presumed-dead process's records as interrupted...
        mine = store._owner
        store._owner = "presumed-dead"
        await store.start(started("slow", started_at=EDGE + timedelta(hours=1)))
        await store.start(started("lost", started_at=EDGE + timedelta(hours=2), team="t1"))
        store._owner = mine
        assert await store.recover() == 2
        assert await stored(store) == expected(await store.records())
        # ... and a late completion replaces the interrupted estimate, counted once.
        await store.finish(rec("slow", started_at=EDGE + timedelta(hours=1), output_tokens=3))
        records = await store.records()
        assert {r.id: r.status for r in records}["a5"] == "started"
        assert {r.id: r.status for r in records}["lost"] == "interrupted"
        assert "a4" not in {r.id for r in records}
        assert await stored(store) == expected(records)
        assert sum(s["calls"] for s in (await stored(store)).values()) == len(records) - 1
    finally:
        await store.close()
    # A clean close interrupts a5, its own open attempt: counted then.
    again = sql_backend.make()
    assert isinstance(again, SqlLedger)
    await again.open()
    try:
        records = await again.records()
        assert {r.id: r.status for r in records}["a5"] == "interrupted"
        assert await stored(again) == expected(records)
    finally:
        await again.close()


async def test_a_failed_batch_leaves_the_rollup_untouched(sql_backend: Backend) -> None:
    store = sql_backend.make()
    assert isinstance(store, SqlLedger)
    await store.open()
    try:
        await store.write(rec("dup", input_tokens=5))
        results = await asyncio.gather(
            store.write(rec("dup", input_tokens=9)),
            store.write(rec("fine", input_tokens=11)),
            return_exceptions=True,
        )
        assert isinstance(results[0], ValueError)
        assert results[1] is None
        records = await store.records()
        assert await stored(store) == expected(records)
        assert sum(s["input_tokens"] for s in (await stored(store)).values()) == 16
    finally:
        await store.close()


async def test_m012_backfills_an_existing_ledger(
    sql_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [name for name, _ in migrations_module.MIGRATIONS]
    before = migrations_module.MIGRATIONS[: names.index("m012_call_rollups")]
    monkeypatch.setattr(migrations_module, "MIGRATIONS", before)
    old = sql_backend.make()
    await old.open()
    for record in workload():
        await old.write(record)
    await old.start(started("open", started_at=EDGE))
    await old.close()  # `open` is closed as interrupted, before the roll-up exists
    monkeypatch.undo()
    new = sql_backend.make()
    assert isinstance(new, SqlLedger)
    await new.open()
    try:
        records = await new.records()
        assert len(records) == len(workload()) + 1
        assert await stored(new) == expected(records)
    finally:
        await new.close()
