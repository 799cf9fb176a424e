"""What the write-ahead ledger costs per attempt, and what group commit saves.

    python bench/write_ahead.py [--attempts 2000] [--db sqlite,postgres]

Three ways to put one attempt in the ledger, each at concurrency 1 (the latency a
request pays) and 50 (a loaded gateway):

  before      one INSERT per attempt in its own transaction, statement built per
              call (the ledger before issue 13/14)
  one write   a single record per attempt through the group-commit writer (what the
              write path costs without write-ahead)
  write-ahead `start` (the started record) before the call and `finish` after, both
              through the group-commit writer (the ledger now)

Wall time is per attempt (concurrency 1: the added latency; concurrency 50: the
inverse of throughput); CPU is this process's CPU (all threads, the aiosqlite
worker included) per attempt; PostgreSQL's own server CPU is not counted. The
database is a scratch SQLite file or a scratch PostgreSQL schema.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import make_url

from modelyard.ledger import CallRecord, SqlLedger
from modelyard.ledger.memory import normalise
from modelyard.ledger.migrations import call_records, usd_to_nanousd

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def record(i: int, status: str = "ok") -> CallRecord:
    return CallRecord(
        id=f"{i}-{secrets.token_hex(6)}",
        request_id=f"req-{i}",
        decision_id=f"dec-{i}",
        policy="cheapest",
        model_id="bench/gpt",
        deployment="fake",
        upstream_model="gpt-test",
        attempt=1,
        started_at=datetime.now(UTC),
        latency_ms=0.0 if status == "started" else 120.0,
        status=status,  # type: ignore[arg-type]
        input_tokens=120,
        output_tokens=40,
        cost_usd=Decimal("0.000042"),
        reasons={"candidates": [{"model": "bench/gpt", "score": 0.5}], "policy": "cheapest"},
        usage_source="estimated" if status == "started" else "reported",
    )


async def before(store: SqlLedger, i: int) -> None:
    stored = normalise(record(i))
    row = {f.name: getattr(stored, f.name) for f in dataclasses.fields(stored)}
    row["cost_nanousd"] = usd_to_nanousd(row.pop("cost_usd"))
    async with store.engine.begin() as conn:
        await conn.execute(insert(call_records).values(**row))


async def one_write(store: SqlLedger, i: int) -> None:
    await store.write(record(i))


async def write_ahead(store: SqlLedger, i: int) -> None:
    started = record(i, "started")
    await store.start(started)
    await store.finish(dataclasses.replace(record(i), id=started.id))


Way = Callable[[SqlLedger, int], Awaitable[None]]


async def measure(
    store: SqlLedger, way: Way, attempts: int, concurrency: int
) -> tuple[float, float]:
    """(wall ms, CPU ms) per attempt."""
    queue = iter(range(attempts))
    # SQLite's lock is per file: the 'before' path serialises as it did in the store.
    lock = asyncio.Lock() if way is before and store.url.startswith("sqlite") else None

    async def worker() -> None:
        for i in queue:
            if lock is None:
                await way(store, i)
            else:
                async with lock:
                    await way(store, i)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall / attempts * 1000, cpu / attempts * 1000


async def bench(url: str, schema: str | None, attempts: int) -> None:
    store = SqlLedger(url, schema=schema)
    await store.open()
    try:
        await measure(store, write_ahead, 200, 50)  # warm up: connections, caches
        for concurrency in (1, 50):
            n = attempts if concurrency > 1 else max(100, attempts // 10)
            for name, way in (
                ("before", before),
                ("one write", one_write),
                ("write-ahead", write_ahead),
            ):
                wall, cpu = await measure(store, way, n, concurrency)
                print(
                    f"  concurrency {concurrency:2d}  {name:11s}  {wall:6.3f} ms wall/attempt  "
                    f"{cpu:6.3f} ms CPU/attempt  ({n} attempts)",
                    flush=True,
                )
        batches, ops = store._writer.batches, store._writer.ops
        per = ops / batches
        print(f"  group commit: {ops} writes in {batches} transactions ({per:.1f} per commit)")
    finally:
        await store.close()


def postgres_schema() -> tuple[str, str]:
    import psycopg

    base = make_url(os.environ.get("MODELYARD_TEST_POSTGRES_URL", DEFAULT_PG))
    schema = f"modelyard_bench_{secrets.token_hex(4)}"
    libpq = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return base.render_as_string(hide_password=False), schema


def drop_schema(schema: str) -> None:
    import psycopg

    base = make_url(os.environ.get("MODELYARD_TEST_POSTGRES_URL", DEFAULT_PG))
    libpq = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--db", default="sqlite,postgres")
    args = parser.parse_args()
    for db in args.db.split(","):
        print(db)
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                asyncio.run(bench(f"sqlite:///{Path(tmp) / 'l.db'}", None, args.attempts))
        else:
            url, schema = postgres_schema()
            try:
                asyncio.run(bench(url, schema, args.attempts))
            finally:
                drop_schema(schema)


if __name__ == "__main__":
    main()
