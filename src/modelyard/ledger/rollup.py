"""The hourly roll-up of `call_records` (migration m012), kept exact by the write path.

`call_rollups` holds, per UTC hour and per (model, key, team, task, reference model,
role, status), how many records and their summed tokens and nano-dollars. The
dashboard's spend and savings pages read it instead of every record in a range, so
they cost in proportion to the hours and groups shown, not to the rows.

Exactness rule: a record counts once it has a final status (anything but
`started`), exactly once. Every change to a record's final state is applied to
the roll-up *in the same transaction*, from the records themselves, by id:

- an insert adds the inserted records that are final (a write-ahead `started`
  record adds nothing);
- completing a record (`finish`) first subtracts whatever that record counted for
  (nothing if it was `started`; its interrupted estimate if a sweep had closed it
  by mistake), then adds its final outcome;
- the sweep that closes dead processes' `started` records adds them as
  `interrupted`; a discard deletes only `started` records, which never counted.

All of it is `INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE` (both SQLite and
PostgreSQL have it), so it is set-based and done by the database. A unique key
cannot hold NULLs on SQLite (each NULL is distinct), so a missing key, team, task,
reference model or role is stored as `''` (`NONE`); no real value is empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    literal_column,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from modelyard.ledger.migrations import UTCDateTime, call_records
from modelyard.ledger.records import OPEN_STATUS

ROLLUP_MIGRATION: Final = "m012_call_rollups"
# What a missing key, team, task, reference model or role is stored as.
NONE: Final = ""
# The key columns after `hour`, each taken from the record column of the same name.
KEY_COLUMNS: Final = ("model_id", "key_id", "team", "task", "reference_model", "role", "status")
MEASURES: Final = ("input_tokens", "output_tokens", "cached_input_tokens", "cost_nanousd")
# Ids per statement when many records change at once (a sweep after a crash):
# well under SQLite's bound-parameter limit.
CHUNK: Final = 500


def call_rollups_v1(metadata: MetaData) -> Table:
    """`call_rollups` as migration m012 creates it."""
    return Table(
        "call_rollups",
        metadata,
        # The hour a record started in (UTC), truncated.
        Column("hour", UTCDateTime, primary_key=True),
        *(Column(name, Text, primary_key=True) for name in KEY_COLUMNS[:-1]),
        Column("status", String(16), primary_key=True),
        Column("calls", BigInteger, nullable=False),
        *(Column(name, BigInteger, nullable=False) for name in MEASURES),
        # SQLite: the table *is* its key's B-tree (led by hour), so a date range reads
        # one contiguous run of rows and no separate index.
        sqlite_with_rowid=False,
    )


call_rollups = call_rollups_v1(MetaData())
_c = call_records.c


def hour_of(dialect: str, started_at: ColumnElement[Any]) -> ColumnElement[Any]:
    """The UTC hour `started_at` falls in, in the column's own storage form."""
    if dialect == "postgresql":
        # date_trunc on a timestamptz would truncate in the session's time zone
        # (wrong for +05:30); truncating the UTC wall clock is right everywhere.
        utc: ColumnElement[str] = literal_column("'UTC'")
        wall = func.date_trunc(literal_column("'hour'"), func.timezone(utc, started_at))
        return func.timezone(utc, wall)
    # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format).
    prefix = func.substr(started_at, literal_column("1"), literal_column("13"))
    return type_coerce(prefix.op("||")(literal_column("':00:00.000000'")), Text)


def _key(name: str) -> ColumnElement[Any]:
    column = _c[name]
    return column if name in ("model_id", "status") else func.coalesce(column, literal_column("''"))


@cache
def contribution(dialect: str, sign: int, by_ids: bool = True) -> Insert:
    """Add (`sign` 1) or take back (-1) the final records among `:ids` (or all
    records, `by_ids=False`: the backfill) into `call_rollups`."""
    keys = [hour_of(dialect, _c.started_at), *(_key(name) for name in KEY_COLUMNS)]
    count: ColumnElement[Any] = func.count()
    sums: list[ColumnElement[Any]] = [func.sum(_c[name]) for name in MEASURES]
    if sign < 0:
        count, sums = -count, [-s for s in sums]
    where = _c.id.in_(bindparam("ids", expanding=True)) if by_ids else true()
    rows = select(*keys, count, *sums).where(_c.status != OPEN_STATUS, where).group_by(*keys)
    names = ["hour", *KEY_COLUMNS, "calls", *MEASURES]
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(call_rollups).from_select(names, rows)
    summed = ("calls", *MEASURES)
    return stmt.on_conflict_do_update(
        index_elements=["hour", *KEY_COLUMNS],
        set_={name: call_rollups.c[name] + stmt.excluded[name] for name in summed},
    )


def add_final(conn: Connection, ids: Sequence[str]) -> None:
    """Count the records `ids` that are final (on a sync connection: the sweep)."""
    for start in range(0, len(ids), CHUNK):
        conn.execute(contribution(conn.dialect.name, 1), {"ids": list(ids[start : start + CHUNK])})


def backfill(conn: Connection) -> None:
    """Count every final record (migration m012, and bulk loads that bypass the writer)."""
    conn.execute(contribution(conn.dialect.name, 1, by_ids=False))
