"""Write-ahead records, recovery after a crash, the group-commit writer, storable text."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from modelyard.ledger import CallRecord, InMemoryLedger, LedgerStore, SqlLedger
from modelyard.ledger.migrations import call_records, ledger_writers
from modelyard.ledger.wal import pid_alive

from .conftest import Backend
from .test_ledger import rec


def started(id: str, **fields: object) -> CallRecord:
    base: dict[str, object] = {
        "status": "started",
        "latency_ms": 0.0,
        "input_tokens": 1000,
        "output_tokens": 4000,
        "cost_usd": Decimal("0.0017"),
        "usage_source": "estimated",
    }
    return rec(id, **(base | fields))


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_started_record_is_completed_in_place(ledger: LedgerStore) -> None:
    await ledger.start(started("a1"))
    [open_] = await ledger.records()
    assert (open_.status, open_.usage_source, open_.output_tokens) == ("started", "estimated", 4000)
    # An open attempt is not in the usage report until it settles.
    assert await ledger.usage(by=("model",)) == []

    done = rec("a1", input_tokens=10, output_tokens=3, cost_usd=Decimal("0.000002"))
    await ledger.finish(done)
    [closed] = await ledger.records()
    assert closed == done
    [row] = await ledger.usage(by=("model",))
    assert (row.calls, row.interrupted, row.output_tokens) == (1, 0, 3)


async def test_discard_drops_only_an_open_record(ledger: LedgerStore) -> None:
    await ledger.start(started("never-sent"))
    await ledger.write(rec("billed"))
    await ledger.discard("never-sent")
    await ledger.discard("billed")  # settled: kept
    assert [r.id for r in await ledger.records()] == ["billed"]


async def test_only_started_records_can_be_written_ahead(ledger: LedgerStore) -> None:
    with pytest.raises(ValueError, match="started"):
        await ledger.start(rec("x", status="ok"))


async def test_records_of_a_dead_process_are_closed_as_interrupted_at_open(
    sql_backend: Backend,
) -> None:
    store = sql_backend.make()
    assert isinstance(store, SqlLedger)
    await store.open()
    pid = dead_pid()
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(ledger_writers).values(
                owner="ghost", host=os.uname().nodename, pid=pid, heartbeat_at=time.time()
            )
        )
    # Written ahead as the dead process would have: its own owner id.
    store._owner = "ghost"
    await store.start(started("lost-call"))
    store._owner = "someone-else"
    await store.close()

    reopened = sql_backend.make()
    await reopened.open()
    try:
        [record] = await reopened.records()
        assert (record.status, record.usage_source) == ("interrupted", "estimated")
        # Billed at the reservation estimate it was written with.
        assert (record.input_tokens, record.output_tokens) == (1000, 4000)
        assert record.cost_usd == Decimal("0.0017")
        [row] = await reopened.usage(by=("model",))
        assert (row.calls, row.errors, row.interrupted) == (1, 1, 1)
        assert row.cost_usd == Decimal("0.0017")
    finally:
        await reopened.close()


async def test_a_live_writer_elsewhere_keeps_its_open_records_until_stale(
    sql_backend: Backend,
) -> None:
    store = sql_backend.make()
    assert isinstance(store, SqlLedger)
    await store.open()
    try:
        async with store.engine.begin() as conn:
            for owner, beat in (("fresh", time.time()), ("stale", time.time() - 3600)):
                await conn.execute(
                    insert(ledger_writers).values(
                        owner=owner, host="another-host", pid=1, heartbeat_at=beat
                    )
                )
        mine = store._owner
        for owner in ("fresh", "stale"):
            store._owner = owner
            await store.start(started(f"by-{owner}"))
        store._owner = mine
        assert await store.recover() == 1
        statuses = {r.id: r.status for r in await store.records()}
        assert statuses == {"by-fresh": "started", "by-stale": "interrupted"}
        async with store.engine.connect() as conn:
            owners = set(await conn.scalars(select(ledger_writers.c.owner)))
        assert "stale" not in owners
        assert "fresh" in owners
        assert mine in owners
    finally:
        await store.close()


async def test_a_completion_after_a_mistaken_interruption_restores_the_truth(
    sql_backend: Backend,
) -> None:
    store = sql_backend.make()
    await store.open()
    try:
        assert isinstance(store, SqlLedger)
        store._owner = "presumed-dead"  # not registered: the sweep closes its records
        await store.start(started("slow"))
        assert await store.recover() == 1
        await store.finish(rec("slow", output_tokens=7))
        [record] = await store.records()
        assert (record.status, record.output_tokens, record.usage_source) == ("ok", 7, "reported")
    finally:
        await store.close()


async def test_a_clean_close_interrupts_its_own_open_attempts(sql_backend: Backend) -> None:
    store = sql_backend.make()
    await store.open()
    await store.start(started("in-flight-at-shutdown"))
    await store.close()
    again = sql_backend.make()
    await again.open()
    try:
        assert [r.status for r in await again.records()] == ["interrupted"]
    finally:
        await again.close()


async def test_concurrent_writes_are_group_committed(sql_backend: Backend) -> None:
    store = sql_backend.make()
    assert isinstance(store, SqlLedger)
    await store.open()
    try:
        writer = store._writer
        before = writer.batches
        await asyncio.gather(*(store.write(rec(f"r{i}")) for i in range(200)))
        assert len(await store.records(limit=1000)) == 200
        # All 200 were queued before the writer ran: far fewer transactions than writes.
        assert writer.batches - before <= 10
    finally:
        await store.close()


async def test_a_bad_record_fails_alone_in_its_batch(ledger: LedgerStore) -> None:
    await ledger.write(rec("taken"))
    results = await asyncio.gather(
        *(ledger.write(rec(i)) for i in ("b1", "taken", "b2")), return_exceptions=True
    )
    assert isinstance(results[1], ValueError)
    assert results[0] is None
    assert results[2] is None
    assert sorted(r.id for r in await ledger.records()) == ["b1", "b2", "taken"]


async def test_upstream_text_that_no_database_stores_is_escaped(ledger: LedgerStore) -> None:
    nasty = "a\x00b\ud800c"
    record = rec(
        "n1",
        status="error",
        error_message=nasty,
        reasons={"note": nasty, nasty: [nasty]},
    )
    await ledger.write(record)
    [stored] = await ledger.records()
    assert stored.error_message == "a\ufffdb\ufffdc"
    assert stored.reasons == {"note": "a\ufffdb\ufffdc", "a\ufffdb\ufffdc": ["a\ufffdb\ufffdc"]}


async def test_memory_store_has_nothing_to_recover() -> None:
    store = InMemoryLedger()
    await store.open()
    await store.start(started("s"))
    assert await store.recover() == 0
    finished = dataclasses.replace(rec("s"), reasons={"ignored": True})
    await store.finish(finished)
    # Reasons were stored with the started record; completion keeps them.
    [record] = await store.records()
    assert record.status == "ok"
    assert record.reasons == {}


def test_a_reaped_process_is_dead_and_this_one_alive() -> None:
    assert not pid_alive(dead_pid())
    assert pid_alive(os.getpid())


async def test_started_rows_carry_their_owner(sql_backend: Backend) -> None:
    store = sql_backend.make()
    assert isinstance(store, SqlLedger)
    await store.open()
    try:
        await store.start(started("o1"))
        await store.write(rec("w1"))
        async with store.engine.connect() as conn:
            rows = dict((await conn.execute(select(call_records.c.id, call_records.c.owner))).all())
        assert rows == {"o1": store._owner, "w1": None}
    finally:
        await store.close()


async def test_an_idle_writer_keeps_beating(tmp_path: Path) -> None:
    # Without writes: a process that only waits must not look dead to other processes.
    store = SqlLedger(f"sqlite:///{tmp_path / 'idle.db'}", stale_after_s=0.5)
    await store.open()
    try:

        async def beat() -> float:
            async with store.engine.connect() as conn:
                query = select(ledger_writers.c.heartbeat_at).where(
                    ledger_writers.c.owner == store._owner
                )
                return float((await conn.execute(query)).scalar_one())

        first = await beat()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if await beat() > first:
                break
        assert await beat() > first
    finally:
        await store.close()
