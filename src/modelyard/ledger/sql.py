"""`SqlLedger`: the ledger in SQLite (aiosqlite) or PostgreSQL (psycopg 3), async.

Aggregation happens in SQL, money is summed as integer nano-dollars, and the
semantics match `InMemoryLedger` exactly (that store is the reference). Every write
goes through one group-commit writer (`ledger.writer`); `started` records of dead
processes are closed by `ledger.wal`'s sweep (see docs/design-notes.md).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Date,
    bindparam,
    case,
    cast,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from modelyard.errors import ConfigError
from modelyard.ledger.derived import derived_columns
from modelyard.ledger.memory import (
    GroupBy,
    check_group_by,
    check_limit,
    check_window,
    normalise,
    normalise_exchange,
    usage_order,
)
from modelyard.ledger.migrations import (
    WRITE_AHEAD_MIGRATION,
    apply_migrations,
    call_records,
    exchanges,
    migrations_table,
    nanousd_to_usd,
    usd_to_nanousd,
)
from modelyard.ledger.records import (
    CACHED_STATUS,
    INTERRUPTED_STATUS,
    NOT_ERRORS,
    OPEN_STATUS,
    CallRecord,
    Exchange,
    SpendScope,
    UsageRow,
)
from modelyard.ledger.rollup import ROLLUP_MIGRATION, contribution
from modelyard.ledger.wal import (
    DEFAULT_STALE_AFTER_S,
    heartbeat,
    new_owner,
    retire_writer,
    sweep_dead_writers,
)
from modelyard.ledger.writer import GroupCommitWriter, Op, OpKind, group

log = logging.getLogger("modelyard.ledger")

# User-facing scheme -> the async driver this store runs on.
_DRIVERS: Final = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg_async",
}
# Lower-case identifiers only: the name goes unquoted into a libpq option string.
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# One fixed key, so two processes opening one database migrate one at a time.
_MIGRATION_LOCK_KEY: Final = 0x6D6F_6465_6C79_6172  # b"modelyar"
_SQLITE_BEGIN_OPTION: Final = "modelyard_sqlite_begin"
# What completing a `started` record sets; who, what and when were written ahead.
_OUTCOME: Final = (
    "latency_ms",
    "status",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_nanousd",
    "ttft_ms",
    "error_class",
    "error_message",
    "streamed",
    "confidence",
    "usage_source",
    # A cascade learns an answer's role and score only once the verifier has spoken.
    "role",
    "verifier_score",
)
_c = call_records.c
# Built once: SQLAlchemy compiles each statement once and reuses it from its cache,
# and executemany sends a batch as one multi-row statement.
_STATEMENTS: Final[dict[OpKind, Any]] = {
    "insert": insert(call_records),
    "finish": update(call_records)
    .where(_c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _OUTCOME}),
    "discard": delete(call_records).where(_c.id == bindparam("b_id"), _c.status == OPEN_STATUS),
    "exchange": insert(exchanges),
}


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        # `from None`: the parser's message may quote the URL, password and all.
        raise ConfigError("the ledger database URL could not be parsed") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"unsupported ledger database {parsed.drivername!r}: "
            "use sqlite:///path or postgresql://user@host/db"
        )
    return parsed.set(drivername=driver)


def normalize_url(url: str) -> str:
    """`url` with the async driver this store uses: `sqlite:///p` -> `sqlite+aiosqlite:///p`,
    `postgresql://…` / `postgres://…` -> `postgresql+psycopg://…`. Other schemes or
    drivers raise `ConfigError`."""
    return _parse(url).render_as_string(hide_password=False)


class SqlLedger:
    """A `LedgerStore` in SQLite or PostgreSQL, through a SQLAlchemy async engine.

    `schema` (PostgreSQL only) puts the tables in an existing schema by setting
    the connection's `search_path`. `open()` applies pending migrations, registers
    this process as a writer and closes what dead writers left open. A writer silent
    for `stale_after_s` is presumed dead (on this host, a gone pid is dead at once).
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        busy_timeout_ms: int = 5000,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
    ) -> None:
        self._url = _parse(url)
        self._dialect = self._url.get_backend_name()
        if schema is not None:
            if self._dialect != "postgresql":
                raise ConfigError("a ledger schema can only be set for PostgreSQL")
            if not _SCHEMA_NAME.fullmatch(schema):
                raise ConfigError(f"ledger schema must be a lower-case identifier, got {schema!r}")
        self._schema = schema
        self._busy_timeout_ms = busy_timeout_ms
        self._engine: AsyncEngine | None = None
        self._stale_after_s = stale_after_s
        self._write_ahead = False
        # Whether `call_rollups` exists (m012) and is kept by this store's writes.
        self._rollup = False
        # This process's identity on `started` records (a new one per open).
        self._owner = new_owner()
        # Every write goes through one writer task (group commit). For SQLite this
        # also means one writer per process: pooled connections racing for the
        # write lock could outwait busy_timeout when the loop is busy.
        self._writer = GroupCommitWriter(
            self._commit, tick=self._tick, tick_s=max(0.05, stale_after_s / 5)
        )

    @property
    def url(self) -> str:
        """The normalised URL with any password masked (safe to log)."""
        return self._url.render_as_string(hide_password=True)

    @property
    def engine(self) -> AsyncEngine:
        """The open engine (for diagnostics and tests)."""
        if self._engine is None:
            raise RuntimeError("ledger is not open: call open() first")
        return self._engine

    async def open(self) -> None:
        """Create the engine and apply pending migrations; a second call does nothing."""
        if self._engine is not None:
            return
        engine = self._create_engine()
        try:
            applied = await self._migrate(engine)
            self._write_ahead = WRITE_AHEAD_MIGRATION in applied
            self._rollup = ROLLUP_MIGRATION in applied
            self._engine = engine
            self._owner = new_owner()
            closed = 0
            if self._write_ahead:
                async with self._write_tx() as conn:
                    await conn.run_sync(heartbeat, self._owner)
                closed = await self.recover()
        except BaseException:
            self._engine = None
            await engine.dispose()
            raise
        if closed:
            log.warning("closed %d attempt(s) left by a dead process as interrupted", closed)
        self._writer.start()

    async def close(self) -> None:
        """Commit queued writes, close this process's own open attempts as
        `interrupted`, unregister, and close every pooled connection; the store can
        be opened again."""
        if self._engine is None:
            return
        try:
            await self._writer.close()
            if self._write_ahead:
                async with self._write_tx() as conn:
                    await conn.run_sync(retire_writer, self._owner, self._rollup)
        finally:
            engine, self._engine = self._engine, None
            await engine.dispose()

    def _create_engine(self) -> AsyncEngine:
        if self._dialect == "sqlite":
            database = self._url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                _private_file(Path(database).expanduser())
            engine = create_async_engine(self._url)
            _configure_sqlite(engine, self._busy_timeout_ms)
            return engine
        connect_args: dict[str, Any] = {}
        if self._schema is not None:
            connect_args["options"] = f"-csearch_path={self._schema}"
        # Pre-ping: a long-running server outlives PostgreSQL restarts.
        return create_async_engine(self._url, connect_args=connect_args, pool_pre_ping=True)

    async def _migrate(self, engine: AsyncEngine) -> set[str]:
        """Apply pending migrations; the names applied, now or before (a store opened
        with an older migration list, as tests do, lacks the later tables)."""
        async with engine.connect() as conn:
            # BEGIN IMMEDIATE takes SQLite's write lock up front, so concurrent
            # openers queue on the busy timeout instead of deadlocking mid-way.
            conn = await conn.execution_options(**{_SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with conn.begin():
                if self._dialect == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                await conn.run_sync(apply_migrations)
                applied = set(await conn.scalars(select(migrations_table.c.name)))
        return applied

    async def applied_migrations(self) -> list[tuple[str, datetime]]:
        """Names of the applied migrations with when each was applied, in that order."""
        stmt = select(migrations_table.c.name, migrations_table.c.applied_at).order_by(
            migrations_table.c.applied_at, migrations_table.c.name
        )
        async with self.engine.connect() as conn:
            return [(name, at) for name, at in await conn.execute(stmt)]

    async def write(self, record: CallRecord) -> None:
        """Insert a finished `record`, committed before returning; a duplicate id raises
        `ValueError`."""
        await self._insert(_to_row(record))

    async def start(self, record: CallRecord) -> None:
        """Write an attempt ahead (`started`, owned by this process), committed."""
        if record.status != OPEN_STATUS:
            raise ValueError(f"a write-ahead record must be {OPEN_STATUS!r}, not {record.status!r}")
        await self._insert(_to_row(record, owner=self._owner))

    async def _insert(self, row: dict[str, Any]) -> None:
        try:
            await self._writer.submit("insert", row)
        except IntegrityError:
            # The only constraint a well-typed record can break is the primary key.
            raise ValueError(f"call record {row['id']!r} was already written") from None

    async def finish(self, record: CallRecord) -> None:
        """Complete the `started` record with `record`'s outcome, committed. A record
        a sweep closed as `interrupted` by mistake gets its real outcome back."""
        row = _to_row(record)
        params = {f"b_{name}": row[name] for name in _OUTCOME}
        params["b_id"] = record.id
        await self._writer.submit("finish", params)

    async def discard(self, record_id: str) -> None:
        """Delete a `started` record whose call never reached the network."""
        await self._writer.submit("discard", {"b_id": record_id})

    async def recover(self) -> int:
        """Close `started` records of dead processes as `interrupted`; how many."""
        async with self._write_tx() as conn:
            return await conn.run_sync(self._sweep)

    def _sweep(self, conn: Connection) -> int:
        return sweep_dead_writers(
            conn, me=self._owner, stale_after_s=self._stale_after_s, rollup=self._rollup
        )

    async def _tick(self) -> None:
        """Heartbeat, then close what dead processes left open (on the writer task)."""
        if not self._write_ahead or self._engine is None:
            return
        async with self._write_tx() as conn:
            await conn.run_sync(heartbeat, self._owner)
            closed = await conn.run_sync(self._sweep)
        if closed:
            log.warning("closed %d attempt(s) of dead processes as interrupted", closed)

    async def _commit(self, ops: Sequence[Op]) -> None:
        async with self._write_tx() as conn:
            for kind, params in group(ops):
                if not self._rollup or kind not in ("insert", "finish"):
                    await conn.execute(_STATEMENTS[kind], params)
                    continue
                # The roll-up changes in this same transaction (ledger.rollup).
                if kind == "insert":
                    await conn.execute(_STATEMENTS[kind], params)
                    # A write-ahead batch (`started` only) counts for nothing yet.
                    final = sorted(p["id"] for p in params if p["status"] != OPEN_STATUS)
                else:
                    final = sorted(p["b_id"] for p in params)
                    await self._uncount(conn, final)
                    await conn.execute(_STATEMENTS[kind], params)
                if final:
                    await conn.execute(contribution(self._dialect, 1), {"ids": final})

    async def _uncount(self, conn: AsyncConnection, ids: list[str]) -> None:
        """Take back what records about to be completed counted for: only a record a
        sweep closed as interrupted counts at all, so usually nothing. On PostgreSQL
        the read locks the rows, so a concurrent sweep cannot close one between this
        and the update; SQLite's BEGIN IMMEDIATE already keeps every other writer out."""
        if self._dialect == "postgresql":
            # Every row locked, final or not: the status filter is applied after.
            locked = select(_c.id, _c.status).where(_c.id.in_(ids)).with_for_update()
            rows = (await conn.execute(locked)).all()
            counted = sorted(row_id for row_id, status in rows if status != OPEN_STATUS)
        else:
            final = select(_c.id).where(_c.id.in_(ids), _c.status != OPEN_STATUS)
            counted = sorted(await conn.scalars(final))
        if counted:
            await conn.execute(contribution(self._dialect, -1), {"ids": counted})

    @asynccontextmanager
    async def _write_tx(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN
        IMMEDIATE), so a read-then-write never fails on an upgrade to a writer."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{_SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with conn.begin():
                yield conn

    async def write_exchange(self, exchange: Exchange) -> None:
        """Insert a captured exchange and commit; a second one for a record raises."""
        stored = normalise_exchange(exchange)
        row = {f.name: getattr(stored, f.name) for f in dataclasses.fields(stored)}
        try:
            await self._writer.submit("exchange", row)
        except IntegrityError:
            raise ValueError(
                f"exchange for record {exchange.record_id!r} was already written"
            ) from None

    async def exchanges(self, *, task: str, limit: int = 100_000) -> Sequence[Exchange]:
        """One task's captured exchanges, oldest first."""
        check_limit(limit)
        c = exchanges.c
        stmt = (
            select(exchanges).where(c.task == task).order_by(c.created_at, c.record_id).limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            Exchange(**{f.name: row[f.name] for f in dataclasses.fields(Exchange)}) for row in rows
        ]

    async def records(
        self, *, request_id: str | None = None, limit: int = 1000
    ) -> Sequence[CallRecord]:
        """The oldest `limit` records, oldest first, optionally only one request's."""
        check_limit(limit)
        c = call_records.c
        # Byte order for the id tie-break, as Python sorts; PostgreSQL's default
        # collation may not be.
        id_order = c.id.collate("C") if self._dialect == "postgresql" else c.id
        stmt = select(call_records).order_by(c.started_at, c.attempt, id_order).limit(limit)
        if request_id is not None:
            stmt = stmt.where(c.request_id == request_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_from_row(row) for row in rows]

    async def usage(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: GroupBy = ("model", "day"),
    ) -> Sequence[UsageRow]:
        """Calls, errors, tokens and exact cost per model and/or UTC day, in [since, until).

        Aggregated in SQL; days are UTC days whatever the session's time zone.
        """
        by_model, by_day = check_group_by(by)
        check_window(since, until)
        c = call_records.c
        keys: list[ColumnElement[Any]] = []
        if by_model:
            keys.append(c.model_id)
        if by_day:
            keys.append(self._utc_day())
        stmt = select(
            (c.model_id if by_model else literal_column("NULL")).label("model_id"),
            (self._utc_day() if by_day else literal_column("NULL")).label("day"),
            func.count().label("calls"),
            func.coalesce(
                func.sum(case((c.status.not_in(sorted(NOT_ERRORS)), 1), else_=0)), 0
            ).label("errors"),
            func.coalesce(func.sum(c.input_tokens), 0).label("input_tokens"),
            func.coalesce(func.sum(c.output_tokens), 0).label("output_tokens"),
            func.coalesce(func.sum(c.cost_nanousd), 0).label("cost_nanousd"),
            func.coalesce(func.sum(case((c.status == INTERRUPTED_STATUS, 1), else_=0)), 0).label(
                "interrupted"
            ),
            func.coalesce(func.sum(case((c.status == CACHED_STATUS, 1), else_=0)), 0).label(
                "cached"
            ),
        ).group_by(*keys)
        # An open attempt is not settled yet: it is billed when it completes, or as
        # interrupted when its process died.
        stmt = stmt.where(c.status != OPEN_STATUS)
        if since is not None:
            stmt = stmt.where(c.started_at >= since)
        if until is not None:
            stmt = stmt.where(c.started_at < until)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return sorted((_usage_row(row) for row in rows if row["calls"]), key=usage_order)

    async def spend(self, scope: SpendScope, since: datetime, until: datetime) -> int:
        """Nano-dollars spent by `scope` in [since, until), open attempts at their
        estimate (see `LedgerStore.spend`)."""
        c = call_records.c
        stmt = select(func.coalesce(func.sum(c.cost_nanousd), 0)).where(
            c.started_at >= since, c.started_at < until
        )
        if scope.kind == "tag":
            # Tags are validated to [A-Za-z0-9.:-], so they hold no LIKE wildcards.
            padded: ColumnElement[str] = literal_column("','") + c.tags + literal_column("','")
            stmt = stmt.where(padded.like(f"%,{scope.subject},%"))
        elif scope.kind != "global":
            column = {"key": c.key_id, "team": c.team, "user": c.caller}[scope.kind]
            stmt = stmt.where(column == scope.subject)
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    def _utc_day(self) -> ColumnElement[Any]:
        started_at = call_records.c.started_at
        if self._dialect == "postgresql":
            # timezone('UTC', timestamptz) is the UTC wall clock, independent of the
            # session's TimeZone (date_trunc would use it). A literal, not a bound
            # parameter, so the SELECT and GROUP BY expressions render identically.
            return cast(func.timezone(literal_column("'UTC'"), started_at), Date)
        # SQLite stores UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; date() takes its day.
        return type_coerce(func.date(started_at), Date)


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600): it holds who spent
    what, key hashes and captured prompts. SQLite gives its -wal and -shm files the
    database file's permissions. An existing file keeps the mode its owner chose."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """Per-connection pragmas, and SQLAlchemy (not sqlite3) emitting BEGIN."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the sqlite3 driver's own implicit BEGIN, which skips DDL: with it,
        # a failed migration would leave half its tables behind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Writers wait for each other instead of failing with "database is locked".
        # First: switching a new file to WAL takes the write lock too, and two
        # processes opening one ledger at once would otherwise fail that switch.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # WAL: readers never block the writer. NORMAL is durable against a crash
        # of this process; only a power loss can drop the last commits.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "BEGIN"))


def _to_row(record: CallRecord, owner: str | None = None) -> dict[str, Any]:
    stored = normalise(record)
    row = {f.name: getattr(stored, f.name) for f in dataclasses.fields(stored)}
    row["cost_nanousd"] = usd_to_nanousd(row.pop("cost_usd"))
    row["owner"] = owner
    row.update(derived_columns(stored.reasons))
    return row


_FROM_ROW_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(CallRecord) if f.name not in ("cost_usd", "usage_source")
)


def _from_row(row: Any) -> CallRecord:
    values = {name: row[name] for name in _FROM_ROW_FIELDS}
    return CallRecord(
        **values,
        cost_usd=nanousd_to_usd(row["cost_nanousd"]),
        # Records from before m005 carry no source: they were the provider's report.
        usage_source=row["usage_source"] or "reported",
    )


def _usage_row(row: Any) -> UsageRow:
    # int(): PostgreSQL's sum(bigint) is numeric (a Decimal), SQLite's an int.
    return UsageRow(
        model_id=row["model_id"],
        day=row["day"],
        calls=int(row["calls"]),
        errors=int(row["errors"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cost_usd=nanousd_to_usd(int(row["cost_nanousd"])),
        interrupted=int(row["interrupted"]),
        cached=int(row["cached"]),
    )
