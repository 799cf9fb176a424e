"""SQL the pages share: the date-range filter, time buckets, dimension columns, and
spend aggregates. Everything is SQLAlchemy Core over `call_records`, summed in the
database (integer nano-dollars), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, String, and_, case, func, literal_column, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.dashboard.params import Bucket, DateRange, Dimension
from modelyard.ledger.migrations import call_records, nanousd_to_usd

c = call_records.c
DIMENSION_COLUMNS: Final[dict[Dimension, Any]] = {
    "model": c.model_id,
    "key": c.key_id,
    "team": c.team,
    "task": c.task,
}
# Statuses that are failures on the spend page (an escalation answered, then handed on).
FAILED: Final = ("error", "interrupted")
# How many series a chart draws; the rest are summed into "other".
MAX_SERIES: Final = 8


def in_range(span: DateRange) -> ColumnElement[bool]:
    """Records started inside `span`, shadow answers left out (never billed, never served)."""
    return and_(c.started_at >= span.since, c.started_at < span.until, c.status != "shadow")


def bucket_of(dialect: str, bucket: Bucket) -> ColumnElement[str]:
    """The UTC hour or day a record started in, as sortable text ('2025-03-01' or
    '2025-03-01 14'). Literal formats, so SELECT and GROUP BY render the same SQL."""
    if dialect == "postgresql":
        fmt = "'YYYY-MM-DD HH24'" if bucket == "hour" else "'YYYY-MM-DD'"
        utc = func.timezone(literal_column("'UTC'"), c.started_at)
        return type_coerce(func.to_char(utc, literal_column(fmt)), String)
    # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]': the prefix is the bucket.
    width: ColumnElement[int] = literal_column("13" if bucket == "hour" else "10")
    return type_coerce(func.substr(c.started_at, literal_column("1"), width), String)


def usd(nanos: Any) -> Decimal:
    # int(): PostgreSQL's sum(bigint) is numeric (a Decimal), SQLite's an int.
    return nanousd_to_usd(int(nanos or 0))


@dataclass(frozen=True, slots=True)
class Totals:
    calls: int
    failed: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class Group:
    """One value of a dimension (None: records without one, e.g. no key)."""

    name: str | None
    calls: int
    failed: int
    tokens: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class Series:
    """A chart: bucket labels, and per group the spend in each bucket (dollars as float,
    for drawing only; tables show the exact Decimal)."""

    labels: list[str]
    datasets: dict[str, list[float]]
    calls: dict[str, list[int]]


def _failed() -> ColumnElement[int]:
    return func.sum(case((c.status.in_(FAILED), 1), else_=0))


async def totals(db: AsyncEngine, span: DateRange) -> Totals:
    stmt = select(
        func.count(),
        _failed(),
        func.sum(c.input_tokens),
        func.sum(c.output_tokens),
        func.sum(c.cost_nanousd),
    ).where(in_range(span))
    async with db.connect() as conn:
        row = (await conn.execute(stmt)).one()
    return Totals(int(row[0]), int(row[1] or 0), int(row[2] or 0), int(row[3] or 0), usd(row[4]))


async def breakdown(db: AsyncEngine, span: DateRange, dim: Dimension, limit: int) -> list[Group]:
    """Spend per value of `dim`, most expensive first."""
    col = DIMENSION_COLUMNS[dim]
    cost = func.sum(c.cost_nanousd)
    stmt = (
        select(
            col,
            func.count(),
            _failed(),
            func.sum(c.input_tokens + c.output_tokens),
            cost,
        )
        .where(in_range(span))
        .group_by(col)
        .order_by(cost.desc(), col)
        .limit(limit)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [Group(r[0], int(r[1]), int(r[2] or 0), int(r[3] or 0), usd(r[4])) for r in rows]


async def series(db: AsyncEngine, span: DateRange, dim: Dimension) -> Series:
    """Spend and calls per time bucket for the `MAX_SERIES` costliest values of `dim`."""
    bucket = bucket_of(db.dialect.name, span.bucket)
    col = DIMENSION_COLUMNS[dim]
    stmt = (
        select(bucket, col, func.count(), func.sum(c.cost_nanousd))
        .where(in_range(span))
        .group_by(bucket, col)
        .order_by(bucket)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    spend: dict[str, Decimal] = {}
    for _, name, _, nanos in rows:
        spend[_label(name)] = spend.get(_label(name), Decimal(0)) + usd(nanos)
    top = sorted(spend, key=lambda k: (-spend[k], k))[:MAX_SERIES]
    labels = sorted({r[0] for r in rows})
    where = {label: i for i, label in enumerate(labels)}
    datasets = {name: [0.0] * len(labels) for name in top}
    calls = {name: [0] * len(labels) for name in top}
    for label, name, count, nanos in rows:
        key = _label(name) if _label(name) in datasets else "other"
        if key not in datasets:
            datasets[key], calls[key] = [0.0] * len(labels), [0] * len(labels)
        datasets[key][where[label]] += float(usd(nanos))
        calls[key][where[label]] += int(count)
    return Series(labels, datasets, calls)


def _label(name: str | None) -> str:
    return "(none)" if name is None else name
