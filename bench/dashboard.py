"""Dashboard page load times on a big ledger (issue 15).

Builds a ledger of `--rows` records (default 1,000,000) spread over 90 days, in
SQLite (a temp file) and/or PostgreSQL (a fresh schema, dropped afterwards), by
bulk `executemany` of 10,000 generated rows straight into `call_records` (with
m009's derived columns, as the writer would store them), then copies of those rows
with new ids made by INSERT ... SELECT in the database. Then loads every dashboard page
through the real app (httpx over ASGI, no network) and prints the median of
`--repeat` loads after one warm-up; and, with `--plans`, the query plan of every
statement the pages ran (SQLite `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN`).

    python bench/dashboard.py                        # both databases, 1M rows
    python bench/dashboard.py --db sqlite --rows 100000 --plans
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, event, func, insert, select, text

from modelyard.app_factory import load_stack
from modelyard.ledger import SqlLedger
from modelyard.ledger.derived import derived_columns
from modelyard.ledger.migrations import call_records, usd_to_nanousd
from modelyard.ledger.rollup import backfill, call_rollups

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 20_000
SEED = 10_000
DAYS = 90
STATUSES = ["ok"] * 90 + ["error"] * 6 + ["escalated"] * 3 + ["cancelled"]


def _reasons(models: list[str], task: str | None) -> dict[str, Any]:
    return {
        "policy": "auto",
        "kind": "fallback",
        "requirements": {"task": task, "prompt_tokens": 800},
        "candidates": [
            {"rank": i + 1, "model": m, "expected_cost_usd": f"{0.0001 * 10**i:.9f}"}
            for i, m in enumerate(models)
        ],
        "rejected": [{"model": "local", "reason": "deployment local: no key"}],
        "notes": [],
    }


def rows(
    n: int, models: list[str], now: datetime, seed: int = 15
) -> Iterator[list[dict[str, Any]]]:
    """Batches of `call_records` rows: 20 keys, 5 teams, 6 tasks, 4 models."""
    rng = random.Random(seed)
    tasks = [None, "intents", "summary", "code", "extract", "chat"]
    templates = {(k, t): _reasons(models[k:], t) for k in range(3) for t in tasks}
    batch: list[dict[str, Any]] = []
    for i in range(n):
        first = rng.choice((0, 0, 0, 1, 2))
        task = rng.choice(tasks)
        reasons = templates[(first, task)]
        status = rng.choice(STATUSES)
        tokens_in, tokens_out = rng.randint(50, 5000), rng.randint(10, 1000)
        model = models[first]
        batch.append(
            {
                "id": f"r{i:08d}",
                "request_id": f"q{i // 2:08d}" if i % 17 == 0 else f"q{i:08d}",
                "decision_id": f"d{i:08d}",
                "policy": "auto",
                "model_id": model,
                "deployment": model.split("/")[0],
                "upstream_model": model,
                "attempt": 1,
                "started_at": now - timedelta(seconds=rng.uniform(0, DAYS * 86400)),
                "latency_ms": rng.uniform(50, 3000),
                "status": status,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "cached_input_tokens": 0,
                "cost_nanousd": usd_to_nanousd(Decimal(tokens_in * 3 + tokens_out * 12) / 10**6),
                "streamed": False,
                "reasons": reasons,
                "confidence": rng.random() if task == "intents" else None,
                "key_id": f"key-{rng.randrange(20)}",
                "team": f"team-{rng.randrange(5)}",
                **derived_columns(reasons),
            }
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def fill(store: SqlLedger, n: int, models: list[str], now: datetime, spread: bool) -> float:
    """`SEED` generated rows by executemany, then copies of them with new ids by
    INSERT ... SELECT inside the database until there are `n` (Python building a
    million rows would dominate the set-up on this machine). The indexes are dropped
    for the load and rebuilt after it, as any bulk load does: one sorted build per
    index instead of a million scattered updates. The roll-up (m012) is then rebuilt
    from the loaded rows, as the migration does for an existing ledger (the bulk load
    bypasses the writer that keeps it). With `spread`, copy k is moved 7*k hours
    earlier (wrapping within the 90 days), so copies do not share hours."""
    started = time.perf_counter()
    sqlite = store.engine.dialect.name == "sqlite"
    async with store.engine.begin() as conn:
        if sqlite:
            found = await conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                    " AND tbl_name = 'call_records' AND sql IS NOT NULL"
                )
            )
        else:
            found = await conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'call_records'"
                    " AND schemaname = current_schema() AND indexname NOT LIKE '%pkey'"
                )
            )
        indexes = [(name, ddl) for name, ddl in found]
        for name, _ in indexes:
            await conn.execute(text(f"DROP INDEX {name}"))
    seed = min(n, SEED)
    for batch in rows(seed, models, now):
        async with store.engine.begin() as conn:
            await conn.execute(insert(call_records), batch)
    names = [col.name for col in call_records.columns]
    renamed = {"id", "request_id", "decision_id"}
    async with store.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE bench_seed AS SELECT * FROM call_records"))
    copy = 1
    while seed * (copy + 1) <= n:
        shifted = {"started_at": _shifted(sqlite, copy, now)} if spread else {}
        picks = ", ".join(f"{c} || '-{copy}'" if c in renamed else shifted.get(c, c) for c in names)
        async with store.engine.begin() as conn:
            await conn.execute(
                text(
                    f"INSERT INTO call_records ({', '.join(names)}) SELECT {picks} FROM bench_seed"
                )
            )
        copy += 1
    loaded = time.perf_counter()
    async with store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE bench_seed"))
        for _, ddl in indexes:
            await conn.execute(text(ddl))
    rebuilt = time.perf_counter() - loaded
    print(f"  loaded in {loaded - started:.1f} s, indexes rebuilt in {rebuilt:.1f} s")
    rolled = time.perf_counter()
    async with store.engine.begin() as conn:
        await conn.execute(delete(call_rollups))
        await conn.run_sync(backfill)
        count = (await conn.execute(select(func.count()).select_from(call_rollups))).scalar_one()
    took = time.perf_counter() - rolled
    print(f"  roll-up rebuilt (as m012 does) in {took:.1f} s: {count:,} call_rollups rows")
    async with store.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # Fresh statistics and visibility, as autovacuum / a long-lived SQLite has them.
        await conn.execute(text("ANALYZE" if sqlite else "VACUUM ANALYZE"))
    return time.perf_counter() - started


def _shifted(sqlite: bool, copy: int, now: datetime) -> str:
    """`started_at` moved 7*copy hours earlier, wrapped to stay within the last DAYS days."""
    hours = 7 * copy % (DAYS * 24)
    oldest = (now - timedelta(days=DAYS)).replace(tzinfo=None).isoformat(" ")
    if sqlite:
        # Keep SQLAlchemy's text form: datetime() drops the microseconds, re-append them.
        back = f"datetime(started_at, '-{hours} hours')"
        wrapped = (
            f"CASE WHEN {back} < '{oldest}' THEN datetime({back}, '+{DAYS} days') ELSE {back} END"
        )
        return f"{wrapped} || substr(started_at, 20)"
    back = f"(started_at - interval '{hours} hours')"
    return (
        f"CASE WHEN {back} < timestamptz '{oldest}+00' THEN {back} + interval '{DAYS} days'"
        f" ELSE {back} END"
    )


def pages(now: datetime, models: list[str]) -> list[tuple[str, str]]:
    today = now.date()
    full = f"from={(today - timedelta(days=DAYS)).isoformat()}&to={today.isoformat()}"
    day = f"from={today.isoformat()}&to={today.isoformat()}"
    return [
        ("spend, last 30 days (default)", "/ui"),
        ("spend, all 90 days, by team", f"/ui?{full}&by=team"),
        ("spend, today (hourly), by task", f"/ui?{day}&by=task"),
        ("savings, last 30 days", "/ui/savings"),
        ("savings, all 90 days, fixed reference", f"/ui/savings?{full}&reference={models[-1]}"),
        ("decisions, newest page", "/ui/decisions"),
        ("decisions, model filter", f"/ui/decisions?model={models[1]}"),
        ("decisions, status=error", "/ui/decisions?status=error"),
        ("decisions, key filter", "/ui/decisions?key=key-7"),
        ("decisions, no match (metacharacters)", "/ui/decisions?key=%27%3B%20DROP--%20%C3%9F"),
        ("one request's story", "/ui/requests/q00000017"),
        ("health", "/ui/health"),
        ("specialists, last 30 days", "/ui/specialists"),
        ("backwards range (message)", "/ui?from=2025-03-05&to=2025-03-01"),
    ]


async def explain(store: SqlLedger, statements: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    sqlite = store.engine.dialect.name == "sqlite"
    async with store.engine.connect() as conn:
        for sql, params in statements:
            if sql in seen or not sql.lstrip().upper().startswith("SELECT"):
                continue
            seen.add(sql)
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            result = await conn.exec_driver_sql(prefix + sql, params)
            plan = [str(r[-1]) if sqlite else str(r[0]) for r in result]
            print("  " + " ".join(sql.split())[:160])
            for line in plan:
                print("      " + line)


async def run(db: str, n: int, repeat: int, plans: bool, spread: bool) -> None:
    stack = load_stack(None, [], {})
    priced = sorted(stack.catalog.cards.values(), key=lambda c: c.prices.output)
    models = [c.id for c in priced if c.prices.output > 0][:3]
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if db == "sqlite":
            store = SqlLedger(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        else:
            schema = f"bench_dashboard_{random.randrange(10**6)}"
            import psycopg

            with psycopg.connect(
                PG_URL.replace("postgresql://", "postgresql://"), autocommit=True
            ) as c:
                c.execute(f'CREATE SCHEMA "{schema}"')
            store = SqlLedger(PG_URL, schema=schema)
        try:
            await store.open()
            now = datetime.now(UTC)
            took = await fill(store, n, models, now, spread)
            print(f"\n{db}: {n:,} rows inserted in {took:.1f} s ({n / took:,.0f} rows/s)")
            await measure(stack, store, now, models, repeat, plans)
        finally:
            await store.close()
            if schema is not None:
                import psycopg

                with psycopg.connect(PG_URL, autocommit=True) as c:
                    c.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def measure(
    stack: Any, store: SqlLedger, now: datetime, models: list[str], repeat: int, plans: bool
) -> None:
    app = stack.create_app(store)
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        statements.append((sql, params))

    event.listen(store.engine.sync_engine, "before_cursor_execute", capture)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        print(f"{'page':42} {'status':>6} {'median ms':>10} {'max ms':>8}")
        for name, path in pages(now, models):
            times = []
            status = 0
            for i in range(repeat + 1):
                started = time.perf_counter()
                response = await client.get(path)
                if i:
                    times.append((time.perf_counter() - started) * 1000)
                status = response.status_code
            print(f"{name:42} {status:>6} {statistics.median(times):>10.0f} {max(times):>8.0f}")
    event.remove(store.engine.sync_engine, "before_cursor_execute", capture)
    if plans:
        print("query plans:")
        await explain(store, statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plans", action="store_true")
    parser.add_argument(
        "--spread",
        action="store_true",
        help="move each copy of the seed rows to other hours (a roll-up row per few records)",
    )
    args = parser.parse_args()
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        asyncio.run(run(db, args.rows, args.repeat, args.plans, args.spread))


if __name__ == "__main__":
    main()
