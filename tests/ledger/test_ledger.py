"""Ledger stores: the same behaviour on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from modelyard.errors import ConfigError
from modelyard.ledger import (
    CallRecord,
    Exchange,
    InMemoryLedger,
    LedgerStore,
    SqlLedger,
    UsageRow,
    default_sqlite_path,
    ledger_url_from_env,
    normalize_url,
    open_ledger,
)
from modelyard.ledger import migrations as migrations_module
from modelyard.ledger.migrations import nanousd_to_usd, usd_to_nanousd

from .conftest import POSTGRES_SESSION_TZ, Backend

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
RELEASED = [name for name, _ in migrations_module.MIGRATIONS]
IST = timezone(timedelta(hours=5, minutes=30))


def rec(id: str, **fields: Any) -> CallRecord:
    """A minimal valid record; `fields` override the defaults."""
    base: dict[str, Any] = {
        "request_id": "req-1",
        "decision_id": "dec-1",
        "policy": "cheapest",
        "model_id": "model-a",
        "deployment": "openai",
        "upstream_model": "gpt-x",
        "attempt": 1,
        "started_at": T0,
        "latency_ms": 12.5,
        "status": "ok",
    }
    return CallRecord(id=id, **(base | fields))


def sql(store: LedgerStore) -> SqlLedger:
    assert isinstance(store, SqlLedger)
    return store


# --- round trip and reading -------------------------------------------------


async def test_round_trip_preserves_every_field(ledger: LedgerStore) -> None:
    full = rec(
        "r-full",
        started_at=datetime(2025, 3, 1, 15, 30, 45, 123456, tzinfo=IST),
        status="error",
        input_tokens=1200,
        output_tokens=345,
        cached_input_tokens=1000,
        cost_usd=Decimal("0.000001234"),
        ttft_ms=250.25,
        error_class="ProviderTimeoutError",
        error_message="first token after 30 s — gave up",
        streamed=True,
        caller="team-search",
        scorer_version="priors-3",
        reasons={"ranked": [{"model": "model-a", "score": 0.91, "ok": True}], "why": None},
        confidence=0.875,
    )
    minimal = rec("r-min", started_at=T0 + timedelta(hours=1))
    await ledger.write(full)
    await ledger.write(minimal)

    got = await ledger.records()

    assert got == [full, minimal]
    assert str(got[0].cost_usd) == "0.000001234"
    assert got[0].reasons["ranked"][0]["score"] == 0.91
    for r in got:
        assert r.started_at.utcoffset() == timedelta(0)
    assert got[0].started_at == datetime(2025, 3, 1, 10, 0, 45, 123456, tzinfo=UTC)
    assert (got[1].ttft_ms, got[1].caller, got[1].reasons, got[1].streamed) == (
        None,
        None,
        {},
        False,
    )


async def test_records_filtered_by_request_and_oldest_first(ledger: LedgerStore) -> None:
    later = rec("c", request_id="req-1", started_at=T0 + timedelta(seconds=2))
    retry = rec("b", request_id="req-1", attempt=2, started_at=T0)
    first = rec("a", request_id="req-1", attempt=1, started_at=T0)
    other = rec("d", request_id="req-2", started_at=T0 - timedelta(days=1))
    for r in (later, retry, other, first):
        await ledger.write(r)

    assert [r.id for r in await ledger.records(request_id="req-1")] == ["a", "b", "c"]
    assert [r.id for r in await ledger.records(request_id="req-2")] == ["d"]
    assert [r.id for r in await ledger.records()] == ["d", "a", "b", "c"]
    assert [r.id for r in await ledger.records(limit=2)] == ["d", "a"]
    assert await ledger.records(request_id="nope") == []


async def test_stored_reasons_do_not_alias_the_callers_dict(ledger: LedgerStore) -> None:
    reasons: dict[str, Any] = {"ranked": ["model-a"]}
    await ledger.write(rec("r", reasons=reasons))
    reasons["ranked"].append("model-b")
    [got] = await ledger.records()
    assert got.reasons == {"ranked": ["model-a"]}


async def test_duplicate_id_is_refused_and_first_record_kept(ledger: LedgerStore) -> None:
    await ledger.write(rec("dup", model_id="model-a"))
    with pytest.raises(ValueError, match="already written"):
        await ledger.write(rec("dup", model_id="model-b"))
    assert [r.model_id for r in await ledger.records()] == ["model-a"]


async def test_naive_timestamps_are_refused(ledger: LedgerStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await ledger.write(rec("naive", started_at=datetime(2025, 3, 1, 10, 0)))
    with pytest.raises(ValueError, match="timezone-aware"):
        await ledger.usage(since=datetime(2025, 3, 1))
    assert await ledger.records() == []


async def test_cost_rounds_half_even_to_the_nano_dollar(ledger: LedgerStore) -> None:
    costs = {
        "h0": "0.0000000005",
        "h1": "0.0000000015",
        "h2": "0.0000000025",
        "up": "0.00000000251",
    }
    for id_, cost in costs.items():
        await ledger.write(rec(id_, cost_usd=Decimal(cost)))

    got = {r.id: r.cost_usd for r in await ledger.records()}

    assert got == {
        "h0": Decimal(0),
        "h1": Decimal("0.000000002"),
        "h2": Decimal("0.000000002"),
        "up": Decimal("0.000000003"),
    }
    [total] = await ledger.usage(by=())
    assert total.cost_usd == Decimal("0.000000007")


async def test_concurrent_writes_all_land(ledger: LedgerStore) -> None:
    records = [rec(f"c{i:02d}", started_at=T0 + timedelta(milliseconds=i)) for i in range(50)]

    await asyncio.gather(*(ledger.write(r) for r in records))

    assert [r.id for r in await ledger.records()] == [r.id for r in records]
    [total] = await ledger.usage(by=())
    assert total.calls == 50


async def test_store_must_be_opened(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(RuntimeError, match="not open"):
        await store.write(rec("x"))
    with pytest.raises(RuntimeError, match="not open"):
        await store.records()


# --- usage -------------------------------------------------------------------

DAY1, DAY2 = date(2025, 3, 1), date(2025, 3, 2)


async def seed_usage(ledger: LedgerStore) -> None:
    """Two models over two UTC days, with the day boundary hit exactly."""
    rows = [
        rec("a1", model_id="model-a", started_at=T0, input_tokens=10, output_tokens=1,
            cost_usd=Decimal("0.000001234")),
        rec("a2", model_id="model-a", status="error",
            started_at=datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
            input_tokens=20, output_tokens=2, cost_usd=Decimal("0.000001234")),
        # 00:30 on day 2 in UTC is still day 1 in New York: bucketing must be UTC.
        rec("a3", model_id="model-a", started_at=datetime(2025, 3, 1, 19, 30, tzinfo=timezone(
            timedelta(hours=-5))), input_tokens=30, output_tokens=3,
            cost_usd=Decimal("0.000001234")),
        rec("b1", model_id="model-b", status="cancelled",
            started_at=datetime(2025, 3, 2, 0, 0, tzinfo=UTC), input_tokens=100,
            output_tokens=10, cost_usd=Decimal("0.1")),
        rec("b2", model_id="model-b", started_at=datetime(2025, 3, 2, 12, 0, tzinfo=UTC),
            input_tokens=200, output_tokens=20, cost_usd=Decimal("0.2")),
    ]  # fmt: skip
    for r in rows:
        await ledger.write(r)


def usage(model: str | None, day: date | None, calls: int, errors: int, inp: int, out: int,
          cost: str) -> UsageRow:  # fmt: skip
    return UsageRow(model, day, calls, errors, inp, out, Decimal(cost))


async def test_usage_by_model_and_day(ledger: LedgerStore) -> None:
    await seed_usage(ledger)
    assert await ledger.usage() == [
        usage("model-a", DAY1, 2, 1, 30, 3, "0.000002468"),
        usage("model-a", DAY2, 1, 0, 30, 3, "0.000001234"),
        usage("model-b", DAY2, 2, 1, 300, 30, "0.3"),
    ]


async def test_usage_by_model(ledger: LedgerStore) -> None:
    await seed_usage(ledger)
    rows = await ledger.usage(by=["model"])
    assert rows == [
        usage("model-a", None, 3, 1, 60, 6, "0.000003702"),
        usage("model-b", None, 2, 1, 300, 30, "0.3"),
    ]
    assert isinstance(rows[0].cost_usd, Decimal)


async def test_usage_by_day(ledger: LedgerStore) -> None:
    await seed_usage(ledger)
    assert await ledger.usage(by=["day"]) == [
        usage(None, DAY1, 2, 1, 30, 3, "0.000002468"),
        usage(None, DAY2, 3, 1, 330, 33, "0.300001234"),
    ]


async def test_usage_total_and_empty(ledger: LedgerStore) -> None:
    assert await ledger.usage(by=()) == []
    assert await ledger.usage() == []
    await seed_usage(ledger)
    assert await ledger.usage(by=()) == [usage(None, None, 5, 2, 360, 36, "0.300003702")]


async def test_usage_window_is_since_inclusive_until_exclusive(ledger: LedgerStore) -> None:
    await seed_usage(ledger)
    day2 = datetime(2025, 3, 2, tzinfo=UTC)
    assert await ledger.usage(until=day2, by=["model"]) == [
        usage("model-a", None, 2, 1, 30, 3, "0.000002468"),
    ]
    # The same instant written in another zone selects the same records.
    assert await ledger.usage(since=day2.astimezone(IST), by=["model"]) == [
        usage("model-a", None, 1, 0, 30, 3, "0.000001234"),
        usage("model-b", None, 2, 1, 300, 30, "0.3"),
    ]
    assert await ledger.usage(
        since=day2, until=datetime(2025, 3, 2, 12, 0, tzinfo=UTC), by=["model"]
    ) == [
        usage("model-a", None, 1, 0, 30, 3, "0.000001234"),
        usage("model-b", None, 1, 1, 100, 10, "0.1"),
    ]


async def test_usage_refuses_unknown_grouping(ledger: LedgerStore) -> None:
    with pytest.raises(ValueError, match="grouped by"):
        await ledger.usage(by=["model", "hour"])  # type: ignore[list-item]


# --- database stores: persistence, migrations, SQLite settings ---------------


async def test_reopen_keeps_data_and_applies_migrations_once(sql_backend: Backend) -> None:
    store = sql(sql_backend.make())
    await store.open()
    await store.write(rec("kept", cost_usd=Decimal("0.000001234")))
    first = await store.applied_migrations()
    await store.close()

    reopened = sql(sql_backend.make())
    await reopened.open()
    try:
        assert [name for name, _ in first] == RELEASED
        assert first[0][1].utcoffset() == timedelta(0)
        assert await reopened.applied_migrations() == first  # same row, same applied_at
        assert await reopened.records() == [rec("kept", cost_usd=Decimal("0.000001234"))]
    finally:
        await reopened.close()


async def test_concurrent_first_opens_migrate_once(sql_backend: Backend) -> None:
    stores = [sql(sql_backend.make()) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for s in stores:
            assert [name for name, _ in await s.applied_migrations()] == RELEASED
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_new_migration_is_applied_once(
    sql_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sql(sql_backend.make())
    await store.open()
    await store.write(rec("before"))
    await store.close()
    calls: list[str] = []

    def m002_notes(conn: Connection) -> None:
        calls.append("m002")
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))

    monkeypatch.setattr(
        migrations_module, "MIGRATIONS", [*migrations_module.MIGRATIONS, ("m002_notes", m002_notes)]
    )
    for _ in range(2):
        again = sql(sql_backend.make())
        await again.open()
        names = [name for name, _ in await again.applied_migrations()]
        assert [r.id for r in await again.records()] == ["before"]
        await again.close()

    assert calls == ["m002"]
    assert names == [*RELEASED, "m002_notes"]


async def test_failed_migration_leaves_nothing_behind(
    sql_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def m002_broken(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE half_done (id INTEGER)"))
        raise RuntimeError("boom")

    monkeypatch.setattr(
        migrations_module,
        "MIGRATIONS",
        [*migrations_module.MIGRATIONS, ("m002_broken", m002_broken)],
    )
    with pytest.raises(RuntimeError, match="boom"):
        await sql_backend.make().open()

    monkeypatch.undo()
    store = sql(sql_backend.make())
    await store.open()
    try:
        # Transactional DDL: m001, m002's table and the bookkeeping all rolled back
        # together, so this open applied m001 afresh.
        assert [name for name, _ in await store.applied_migrations()] == RELEASED
        async with store.engine.connect() as conn:
            with pytest.raises(Exception, match="half_done"):
                await conn.execute(text("SELECT * FROM half_done"))
    finally:
        await store.close()


async def test_sqlite_uses_wal_and_connection_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ledger.db"
    store = SqlLedger(f"sqlite:///{path}")
    await store.open()
    try:
        await store.write(rec("w"))
        async with store.engine.connect() as conn:
            synchronous = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
            busy = (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one()
        assert (synchronous, busy) == (1, 5000)  # 1 is NORMAL
    finally:
        await store.close()
    # WAL is recorded in the file itself: a plain connection sees it.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_tables_live_in_the_schema_and_session_is_not_utc(
    ledger: LedgerStore,
) -> None:
    async with sql(ledger).engine.connect() as conn:
        tz = (await conn.execute(text("SHOW TimeZone"))).scalar_one()
        schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
        tables = set(
            (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    ),
                    {"s": schema},
                )
            ).scalars()
        )
    # The day-bucketing tests only prove UTC bucketing if the session zone differs.
    assert tz == POSTGRES_SESSION_TZ
    assert schema.startswith("modelyard_test_")
    assert tables == {
        "call_records",
        "exchanges",
        "ledger_writers",
        "api_keys",
        "budgets",
        "reviews",
        "call_rollups",
        "_modelyard_migrations",
    }


# --- URLs, factory, money ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///rel/ledger.db", "sqlite+aiosqlite:///rel/ledger.db"),
        ("sqlite:////abs/ledger.db", "sqlite+aiosqlite:////abs/ledger.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:pw@h:5433/db", "postgresql+psycopg://u:pw@h:5433/db"),
        ("postgres://u@h/db?sslmode=require", "postgresql+psycopg://u@h/db?sslmode=require"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    "url", ["mysql://u:s3cret@h/db", "postgresql+psycopg2://u:s3cret@h/db", "not a url"]
)
def test_unsupported_url_is_a_config_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_url(url)
    assert "s3cret" not in str(info.value)


def test_sql_ledger_masks_password_and_checks_schema() -> None:
    assert "s3cret" not in SqlLedger("postgresql://u:s3cret@h/db").url
    with pytest.raises(ConfigError, match="only be set for PostgreSQL"):
        SqlLedger("sqlite:///x.db", schema="abc")
    with pytest.raises(ConfigError, match="lower-case identifier"):
        SqlLedger("postgresql://u@h/db", schema="x -cevil=1")


def test_open_ledger_picks_the_store_without_opening_it() -> None:
    assert isinstance(open_ledger(None), InMemoryLedger)
    assert isinstance(open_ledger("memory://"), InMemoryLedger)
    store = open_ledger("sqlite:///never-created.db")
    assert isinstance(store, SqlLedger)
    with pytest.raises(RuntimeError, match="not open"):
        _ = store.engine
    assert not Path("never-created.db").exists()


def test_default_paths_and_env_url(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path / "home")}
    assert default_sqlite_path({**home, "MODELYARD_HOME": str(tmp_path / "mh")}) == (
        tmp_path / "mh" / "ledger.db"
    )
    env = {"MODELYARD_HOME": str(tmp_path)}
    assert ledger_url_from_env(None, env) == f"sqlite:///{tmp_path / 'ledger.db'}"
    assert ledger_url_from_env("memory://", env) == "memory://"
    env["MODELYARD_DATABASE_URL"] = "postgresql://u@h/db"
    assert ledger_url_from_env("memory://", env) == "postgresql://u@h/db"


def test_default_sqlite_path_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MODELYARD_HOME", raising=False)
    assert default_sqlite_path() == tmp_path / ".modelyard" / "ledger.db"


@pytest.mark.parametrize(
    ("usd", "nanos"),
    [("0", 0), ("0.000001234", 1234), ("12.5", 12_500_000_000), ("-0.000000001", -1),
     ("0.0000000005", 0), ("0.0000000015", 2), ("1e-9", 1)],
)  # fmt: skip
def test_nano_dollar_conversion(usd: str, nanos: int) -> None:
    assert usd_to_nanousd(Decimal(usd)) == nanos
    assert nanousd_to_usd(nanos) == Decimal(usd).quantize(
        Decimal("1e-9"), rounding="ROUND_HALF_EVEN"
    )


def test_nano_dollar_conversion_refuses_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        usd_to_nanousd(Decimal("NaN"))


async def test_sqlite_writes_survive_a_busy_event_loop(tmp_path: Path) -> None:
    """Concurrent writers while other tasks block the loop: none may be lost to
    "database is locked" (a 1 ms busy timeout makes any lock wait fatal)."""
    import time

    import anyio
    import anyio.lowlevel

    store = SqlLedger(f"sqlite:///{tmp_path / 'busy.db'}", busy_timeout_ms=1)
    await store.open()
    stop = anyio.Event()

    async def hog() -> None:
        while not stop.is_set():
            # Blocking the loop on purpose, as a busy gateway's tasks do.
            time.sleep(0.002)  # noqa: ASYNC251
            await anyio.lowlevel.checkpoint()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(hog)
            async with anyio.create_task_group() as writers:
                for i in range(100):
                    writers.start_soon(store.write, rec(f"busy{i}"))
            stop.set()
        assert len(await store.records(limit=1000)) == 100
    finally:
        await store.close()


# --- escalations and captured exchanges ---------------------------------------


async def test_escalations_are_not_errors_in_usage(ledger: LedgerStore) -> None:
    await ledger.write(rec("esc", status="escalated", confidence=0.31, model_id="spec"))
    await ledger.write(rec("bad", status="error", model_id="spec", attempt=2))
    await ledger.write(rec("fine", status="ok", model_id="spec", attempt=3))

    [row] = await ledger.usage(by=("model",))
    assert (row.calls, row.errors) == (3, 1)
    assert (await ledger.records(request_id="req-1"))[0].confidence == 0.31


def exchange(record_id: str, task: str | None, minutes: int = 0) -> Exchange:
    return Exchange(
        record_id=record_id,
        request_id=f"req-{record_id}",
        task=task,
        model_id="frontier",
        messages=[{"role": "user", "content": f"ticket {record_id} — ünïcode"}],
        response="card_arrival",
        created_at=datetime(2025, 3, 1, 12, minutes, tzinfo=IST),
    )


async def test_exchanges_round_trip_by_task_oldest_first(ledger: LedgerStore) -> None:
    await ledger.write_exchange(exchange("b", "intents", minutes=5))
    await ledger.write_exchange(exchange("a", "intents", minutes=1))
    await ledger.write_exchange(exchange("other", "summaries"))
    await ledger.write_exchange(exchange("none", None))

    got = await ledger.exchanges(task="intents")
    assert [e.record_id for e in got] == ["a", "b"]
    assert got[0] == dataclasses.replace(
        exchange("a", "intents", minutes=1),
        created_at=datetime(2025, 3, 1, 12, 1, tzinfo=IST).astimezone(UTC),
    )
    assert got[0].created_at.tzinfo == UTC
    assert [e.record_id for e in await ledger.exchanges(task="intents", limit=1)] == ["a"]
    with pytest.raises(ValueError, match="already written"):
        await ledger.write_exchange(exchange("a", "intents"))


async def test_a_version_1_database_is_upgraded_in_place(
    sql_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations_module, "MIGRATIONS", migrations_module.MIGRATIONS[:1])
    old = sql(sql_backend.make())
    await old.open()
    async with old.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO call_records (id, request_id, decision_id, policy, model_id,"
                " deployment, upstream_model, attempt, started_at, latency_ms, status,"
                " input_tokens, output_tokens, cached_input_tokens, cost_nanousd, streamed,"
                " reasons) VALUES ('old', 'req-1', 'dec-1', 'cheapest', 'model-a', 'openai',"
                " 'gpt-x', 1, '2025-03-01 10:00:00', 12.5, 'ok', 0, 0, 0, 0, false, '{}')"
            )
        )
    await old.close()
    monkeypatch.undo()

    upgraded = sql(sql_backend.make())
    await upgraded.open()
    try:
        assert [name for name, _ in await upgraded.applied_migrations()] == RELEASED
        [kept] = await upgraded.records()
        assert (kept.id, kept.confidence, kept.model_id) == ("old", None, "model-a")
        await upgraded.write(rec("new", confidence=0.5, attempt=2))
        assert [r.confidence for r in await upgraded.records()] == [None, 0.5]
    finally:
        await upgraded.close()


# --- cascades: step, role and verifier score (m004) ---------------------------


def test_m004_is_the_released_cascade_migration() -> None:
    assert "m004_call_records_steps" in RELEASED
    assert RELEASED.index("m004_call_records_steps") < RELEASED.index("m005_write_ahead")


async def test_cascade_step_role_and_verifier_score_round_trip(ledger: LedgerStore) -> None:
    rejected = rec(
        "hop1", status="escalated", step=1, role="answer", verifier_score=0.25, model_id="cheap"
    )
    judge = rec("judge1", step=1, role="judge", attempt=2, model_id="judge-model")
    served = rec("hop2", step=2, role="answer", verifier_score=1.0, attempt=3)
    for r in (rejected, judge, served):
        await ledger.write(r)
    got = await ledger.records(request_id="req-1")
    assert [(r.step, r.role, r.verifier_score, r.status) for r in got] == [
        (1, "answer", 0.25, "escalated"),
        (1, "judge", None, "ok"),
        (2, "answer", 1.0, "ok"),
    ]
    assert got == [rejected, judge, served]


async def test_a_verdict_known_only_at_the_end_completes_the_written_ahead_record(
    ledger: LedgerStore,
) -> None:
    # A cascade learns an answer's role and its verifier score after the call: finishing
    # the `started` record must store them (SQL stores update only outcome columns).
    started = rec("ahead", status="started", step=1, role=None, verifier_score=None)
    await ledger.start(started)
    await ledger.finish(
        dataclasses.replace(started, status="escalated", role="candidate", verifier_score=0.25)
    )
    (got,) = await ledger.records(request_id="req-1")
    assert (got.status, got.step, got.role, got.verifier_score) == (
        "escalated", 1, "candidate", 0.25,
    )  # fmt: skip


async def test_usage_counts_cache_hits_as_calls_not_errors(ledger: LedgerStore) -> None:
    await ledger.write(rec("r1", cost_usd=Decimal("0.001"), input_tokens=10, output_tokens=2))
    await ledger.write(rec("r2", status="cached"))
    await ledger.write(rec("r3", status="cached", request_id="req-2"))
    (row,) = await ledger.usage(by=["model"])
    assert (row.calls, row.errors, row.cached) == (3, 0, 2)
    assert (row.input_tokens, row.cost_usd) == (10, Decimal("0.001"))
    assert [r.status for r in await ledger.records(request_id="req-2")] == ["cached"]
