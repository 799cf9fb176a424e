"""The ledger's storage format, and the ordered, named migrations that build it.

In the style of simonw/llm: `MIGRATIONS` is a list of `(name, function)` applied
in order. Each applied name is recorded in `_modelyard_migrations` with the time
it was applied, so re-opening a database applies only what is new. A migration
is never edited or reordered once released; a change is a new migration at the
end. Everything is SQLAlchemy Core, so one definition serves SQLite and
PostgreSQL.

Also here, because they *are* the storage format: money as an exact integer
count of nano-dollars, and timestamps as timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.types import TypeDecorator

from modelyard.ledger.m009_dashboard import m009_dashboard
from modelyard.ledger.m012_rollups import m012_call_rollups

NANOS_PER_USD: Final = Decimal(10) ** 9
MIGRATIONS_TABLE: Final = "_modelyard_migrations"
# The migration that adds write-ahead bookkeeping (owners, heartbeats).
WRITE_AHEAD_MIGRATION: Final = "m005_write_ahead"


def usd_to_nanousd(cost: Decimal) -> int:
    """A dollar amount as an exact integer count of nano-dollars.

    Every price quoted to $0.001 per million tokens costs a whole number of
    nano-dollars per token, so this is exact for real costs. A cost with more
    digits (a computed discount, say) is rounded half-even to the nano-dollar:
    banker's rounding does not bias sums of many rounded costs either way.
    """
    if not cost.is_finite():
        raise ValueError(f"cost must be a finite amount, got {cost}")
    return int((cost * NANOS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def nanousd_to_usd(nanos: int) -> Decimal:
    """Nano-dollars back to an exact `Decimal` dollar amount (nine decimal places)."""
    return Decimal(int(nanos)).scaleb(-9)


def as_utc(value: datetime, what: str = "timestamp") -> datetime:
    """`value` converted to UTC; a naive datetime is refused, never guessed at.

    Guessing (local time? UTC?) would silently move calls between billing days.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect.

    PostgreSQL keeps the instant (`timestamptz`) but returns it in the session's
    time zone; SQLite has no time zone and keeps the wall-clock text. Binding
    UTC (naive on SQLite) and re-attaching UTC on the way out makes both the same,
    and keeps SQLite's fixed-width text ordering equal to time ordering.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = as_utc(value)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value)!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _call_records_v1(metadata: MetaData) -> Table:
    """`call_records` as migration 1 creates it: one column per `CallRecord` field."""
    return Table(
        "call_records",
        metadata,
        Column("id", Text, primary_key=True),
        Column("request_id", Text, nullable=False, index=True),
        Column("decision_id", Text, nullable=False, index=True),
        Column("policy", Text, nullable=False),
        Column("model_id", Text, nullable=False),
        Column("deployment", Text, nullable=False),
        Column("upstream_model", Text, nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("latency_ms", Float, nullable=False),
        Column("status", String(16), nullable=False),
        Column("input_tokens", BigInteger, nullable=False),
        Column("output_tokens", BigInteger, nullable=False),
        Column("cached_input_tokens", BigInteger, nullable=False),
        # Exact money: integer nano-dollars sum exactly in SQL on both dialects.
        Column("cost_nanousd", BigInteger, nullable=False),
        Column("ttft_ms", Float, nullable=True),
        Column("error_class", Text, nullable=True),
        Column("error_message", Text, nullable=True),
        Column("streamed", Boolean, nullable=False),
        Column("caller", Text, nullable=True),
        Column("scorer_version", Text, nullable=True),
        Column("reasons", JSON, nullable=False),
        # The usage report filters on time, and often on model within a window.
        Index("ix_call_records_started_at", "started_at"),
        Index("ix_call_records_model_id_started_at", "model_id", "started_at"),
    )


def _exchanges_v1(metadata: MetaData) -> Table:
    """`exchanges` as migration 3 creates it: captured prompts and answers per record."""
    return Table(
        "exchanges",
        metadata,
        Column("record_id", Text, primary_key=True),
        Column("request_id", Text, nullable=False),
        Column("task", Text, nullable=True),
        Column("model_id", Text, nullable=False),
        Column("messages", JSON, nullable=False),
        Column("response", Text, nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
        # Distillation reads one task's exchanges in time order.
        Index("ix_exchanges_task_created_at", "task", "created_at"),
    )


def _ledger_writers_v1(metadata: MetaData) -> Table:
    """`ledger_writers` as migration 5 creates it: one row per live writing process.

    A process registers here when it opens the ledger and beats every few seconds;
    a `started` record whose owner is gone (no row, a dead pid on this host, or a
    heartbeat older than the staleness window) was left by a dead process.
    """
    return Table(
        "ledger_writers",
        metadata,
        Column("owner", Text, primary_key=True),
        Column("host", Text, nullable=False),
        Column("pid", Integer, nullable=False),
        # Seconds since the epoch (the writer's clock): compared with a window of
        # tens of seconds, so ordinary NTP-disciplined clocks are close enough.
        Column("heartbeat_at", Float, nullable=False),
    )


def _reviews_v1(metadata: MetaData) -> Table:
    """`reviews` as migration 8 creates it: council results flagged for a person.

    The request, the members' answers, the claim map and the adjudicated answer are
    kept whole (JSON / text), so a reviewer sees what the council saw; `status` is
    `pending` until someone resolves it (`accepted`, `rejected`, `edited`), and
    `resolved_by` / `resolved_at` say who and when."""
    return Table(
        "reviews",
        metadata,
        Column("id", Text, primary_key=True),
        Column("request_id", Text, nullable=False),
        Column("decision_id", Text, nullable=False),
        Column("policy", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("request", JSON, nullable=False),
        Column("members", JSON, nullable=False),
        Column("claims", JSON, nullable=False),
        Column("answer", Text, nullable=True),
        Column("agreement", Float, nullable=False),
        Column("reason", Text, nullable=False),
        Column("cost_nanousd", BigInteger, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("resolved_by", Text, nullable=True),
        Column("resolved_at", UTCDateTime, nullable=True),
        Column("resolution", Text, nullable=True),
        # The queue is read by status, oldest first.
        Index("ix_reviews_status_created_at", "status", "created_at"),
    )


# The tables the stores query, in their current shape. `call_records` is
# migration 1's shape plus the columns later migrations added; the v1 function
# stays frozen because old databases replay it.
metadata = MetaData()
call_records = _call_records_v1(metadata)
call_records.append_column(Column("confidence", Float, nullable=True))
# m004: which step of a cascade, in what role, and the verifier's score.
call_records.append_column(Column("step", Integer, nullable=True))
call_records.append_column(Column("role", String(16), nullable=True))
call_records.append_column(Column("verifier_score", Float, nullable=True))
# m005: where the token counts came from, and which process wrote a `started` record.
call_records.append_column(Column("usage_source", Text, nullable=True))
call_records.append_column(Column("owner", Text, nullable=True))
# m006: who spent it (key, team, tags) and why a call was downgraded for a budget.
for _name in ("key_id", "team", "tags", "budget_note"):
    call_records.append_column(Column(_name, Text, nullable=True))
# m009: derived from `reasons` on write (ledger.derived), for the dashboard.
for _name in ("task", "reference_model"):
    call_records.append_column(Column(_name, Text, nullable=True))
# m011: the endpoint a call served (NULL: chat completions).
call_records.append_column(Column("endpoint", Text, nullable=True))
exchanges = _exchanges_v1(metadata)
ledger_writers = _ledger_writers_v1(metadata)
reviews = _reviews_v1(metadata)

migrations_table = Table(
    MIGRATIONS_TABLE,
    MetaData(),
    Column("name", Text, primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
)


def m001_call_records(conn: Connection) -> None:
    """Create `call_records` and its indexes."""
    # A private MetaData, so this migration keeps creating the v1 shape forever.
    _call_records_v1(MetaData()).create(conn)


def m002_call_records_confidence(conn: Connection) -> None:
    """Add `confidence`: a specialist's calibrated confidence, for escalations."""
    column_type = Float().compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE call_records ADD COLUMN confidence {column_type}"))


def m003_exchanges(conn: Connection) -> None:
    """Create `exchanges` (captured prompts and answers, for distillation)."""
    _exchanges_v1(MetaData()).create(conn)


def m004_call_records_steps(conn: Connection) -> None:
    """Add `step`, `role` and `verifier_score`: which hop of a cascade an attempt
    served, as what (answer or judge), and the verifier's score of its answer.
    Nullable, so every existing row reads as a single-step call."""
    for name, column_type in (
        ("step", Integer()),
        ("role", String(16)),
        ("verifier_score", Float()),
    ):
        compiled = column_type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE call_records ADD COLUMN {name} {compiled}"))


def m005_write_ahead(conn: Connection) -> None:
    """Write-ahead attempts: `usage_source` (reported / estimated) and `owner` (the
    process that wrote a `started` record) on `call_records`, an index to find open
    records fast, and `ledger_writers` (live writing processes). Additive only."""
    for column in ("usage_source", "owner"):
        conn.execute(text(f"ALTER TABLE call_records ADD COLUMN {column} TEXT"))
    conn.execute(text("CREATE INDEX ix_call_records_status_owner ON call_records (status, owner)"))
    _ledger_writers_v1(MetaData()).create(conn)


def _api_keys_v1(metadata: MetaData) -> Table:
    """`api_keys` as migration 6 creates it: gateway keys, stored hashed (SHA-256)."""
    return Table(
        "api_keys",
        metadata,
        Column("id", Text, primary_key=True),
        Column("name", Text, nullable=False, unique=True),
        # The key's first characters, to recognise it in listings; never enough to use.
        Column("prefix", Text, nullable=False),
        Column("key_hash", Text, nullable=False, unique=True),
        Column("team", Text, nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("expires_at", UTCDateTime, nullable=True),
        Column("revoked_at", UTCDateTime, nullable=True),
        Column("rpm", Integer, nullable=True),
        Column("tpm", Integer, nullable=True),
        Column("models", JSON, nullable=False),
        Column("policies", JSON, nullable=False),
        Column("max_data_class", Text, nullable=True),
        Column("cap_max_tokens", Boolean, nullable=False),
    )


def _budgets_v1(metadata: MetaData) -> Table:
    """`budgets` as migration 6 creates it: one ceiling per (scope, subject, period)."""
    return Table(
        "budgets",
        metadata,
        Column("scope", Text, primary_key=True),
        Column("subject", Text, primary_key=True),
        Column("period", Text, primary_key=True),
        Column("limit_nanousd", BigInteger, nullable=False),
        Column("on_exhaust", Text, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )


api_keys = _api_keys_v1(metadata)
budgets = _budgets_v1(metadata)


def m006_keys_budgets(conn: Connection) -> None:
    """Keys and budgets (issue 12): `key_id`, `team`, `tags`, `budget_note` on
    `call_records` (with indexes for per-key and per-team spend), `api_keys` and
    `budgets`. Additive only."""
    for column in ("key_id", "team", "tags", "budget_note"):
        conn.execute(text(f"ALTER TABLE call_records ADD COLUMN {column} TEXT"))
    conn.execute(text("CREATE INDEX ix_call_records_team ON call_records (team, started_at)"))
    conn.execute(text("CREATE INDEX ix_call_records_key ON call_records (key_id, started_at)"))
    _api_keys_v1(MetaData()).create(conn)
    _budgets_v1(MetaData()).create(conn)


def m008_reviews(conn: Connection) -> None:
    """Create `reviews` (the council's review queue). Additive only. (m006 and m007
    are other branches' migrations; names, not numbers, decide what is applied.)"""
    _reviews_v1(MetaData()).create(conn)


def m011_call_records_endpoint(conn: Connection) -> None:
    """Add `endpoint`: which endpoint a call served (`embeddings`; NULL, as every
    existing row reads, for chat completions). Additive only. (m009 and m010 are
    other branches' migrations.)"""
    conn.execute(text("ALTER TABLE call_records ADD COLUMN endpoint TEXT"))


Migration = tuple[str, Callable[[Connection], None]]

MIGRATIONS: list[Migration] = [
    ("m001_call_records", m001_call_records),
    ("m002_call_records_confidence", m002_call_records_confidence),
    ("m003_exchanges", m003_exchanges),
    ("m004_call_records_steps", m004_call_records_steps),
    ("m005_write_ahead", m005_write_ahead),
    ("m006_keys_budgets", m006_keys_budgets),
    ("m008_reviews", m008_reviews),
    ("m009_dashboard", m009_dashboard),
    ("m011_call_records_endpoint", m011_call_records_endpoint),
    ("m012_call_rollups", m012_call_rollups),
]


def apply_migrations(conn: Connection) -> list[str]:
    """Apply every migration not yet recorded, in order; return the names applied now.

    Run inside one transaction, so a failed migration leaves nothing half-done
    (PostgreSQL and, with the store's explicit BEGIN, SQLite both have
    transactional DDL). The caller makes concurrent openers wait their turn.
    """
    migrations_table.create(conn, checkfirst=True)
    applied = set(conn.scalars(select(migrations_table.c.name)))
    names = [name for name, _ in MIGRATIONS]
    if len(set(names)) != len(names):
        raise RuntimeError("migration names must be unique")
    done: list[str] = []
    for name, migrate in MIGRATIONS:
        if name in applied:
            continue
        migrate(conn)
        conn.execute(insert(migrations_table).values(name=name, applied_at=datetime.now(UTC)))
        done.append(name)
    return done
