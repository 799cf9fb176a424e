"""Does the group-commit writer batch, with statements compiled once? (issue 14.1)

    python bench/ledger_batches.py [--postgres URL]

Writes 3 rounds of 50 concurrent attempts (a `started` insert each, then its
completion) to a scratch SQLite file and a scratch PostgreSQL schema, with
SQLAlchemy's engine log captured, and prints per database: the writer's ops and
batches (commits), how many statement executions reached the driver, and whether
each execution's compiled statement was `generated` (compiled) or `cached`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import secrets
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from modelyard.ledger import CallRecord, SqlLedger

SCHEMA = "modelyard_ledger_batches"


def started(i: int) -> CallRecord:
    return CallRecord(
        id=f"r{i}-{secrets.token_hex(4)}",
        request_id=f"q{i}",
        decision_id="d",
        policy="auto",
        model_id="m",
        deployment="dep",
        upstream_model="m",
        attempt=1,
        started_at=datetime.now(UTC),
        latency_ms=0.0,
        status="started",
        input_tokens=1,
        output_tokens=1,
        cost_usd=Decimal("0.001"),
    )


async def run(ledger: SqlLedger, log: io.StringIO, label: str) -> None:
    await ledger.open()
    log.truncate(0)
    log.seek(0)
    for _ in range(3):
        records = [started(i) for i in range(50)]
        await asyncio.gather(*(ledger.start(r) for r in records))
        done = [replace(r, status="ok", latency_ms=5.0) for r in records]
        await asyncio.gather(*(ledger.finish(r) for r in done))
    writer = ledger._writer
    lines = log.getvalue().splitlines()
    await ledger.close()
    print(f"{label}: {writer.ops} ops in {writer.batches} commits")
    for i, line in enumerate(lines):
        if line.startswith(("INSERT INTO call_records", "UPDATE call_records SET latency")):
            marker = lines[i + 1].split("]", 1)[0] + "]" if i + 1 < len(lines) else ""
            print(f"  {line[:24]}... {marker}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    log = io.StringIO()
    engine_log = logging.getLogger("sqlalchemy.engine")
    engine_log.addHandler(logging.StreamHandler(log))
    engine_log.setLevel(logging.INFO)
    path = Path(tempfile.mkdtemp()) / "ledger.db"
    asyncio.run(run(SqlLedger(f"sqlite:///{path}"), log, "SQLite"))
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    try:
        asyncio.run(run(SqlLedger(args.postgres, schema=SCHEMA), log, "PostgreSQL"))
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
