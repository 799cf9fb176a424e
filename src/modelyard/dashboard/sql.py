"""SQL the pages share: the date-range filter, time buckets, dimension columns, and
the spend page's aggregate. Everything is SQLAlchemy Core, summed in the database
(integer nano-dollars), on SQLite and PostgreSQL alike: over `call_records` for the
pages that show records, over the hourly roll-up `call_rollups` for spend and
savings, so those cost in proportion to hours and groups, not rows."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, String, and_, case, func, literal_column, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard.dashboard.params import Bucket, DateRange, Dimension
from modelyard.ledger.migrations import call_records, nanousd_to_usd
from modelyard.ledger.rollup import NONE, call_rollups

c = call_records.c
# The spend and savings pages read the hourly roll-up (`ledger.rollup`), not records.
r = call_rollups.c
DIMENSION_COLUMNS: Final[dict[Dimension, Any]] = {
    "model": r.model_id,
    "key": r.key_id,
    "team": r.team,
    "task": r.task,
}
# Statuses that are failures on the spend page (an escalation answered, then handed on).
FAILED: Final = ("error", "interrupted")
# How many series a chart draws; the rest are summed into "other".
MAX_SERIES: Final = 8


def in_range(span: DateRange) -> ColumnElement[bool]:
    """Records started inside `span`, shadow answers left out (never billed, never served)."""
    return and_(c.started_at >= span.since, c.started_at < span.until, c.status != "shadow")


def bucket_of(
    dialect: str, bucket: Bucket, at: ColumnElement[Any] = c.started_at
) -> ColumnElement[str]:
    """The UTC hour or day of the time `at` (a record's start, a roll-up's hour), as
    sortable text ('2025-03-01' or '2025-03-01 14'). Literal formats, so SELECT and
    GROUP BY render the same SQL."""
    if dialect == "postgresql":
        fmt = "'YYYY-MM-DD HH24'" if bucket == "hour" else "'YYYY-MM-DD'"
        utc = func.timezone(literal_column("'UTC'"), at)
        return type_coerce(func.to_char(utc, literal_column(fmt)), String)
    # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]': the prefix is the bucket.
    width: ColumnElement[int] = literal_column("13" if bucket == "hour" else "10")
    return type_coerce(func.substr(at, literal_column("1"), width), String)


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
    return func.sum(case((r.status.in_(FAILED), r.calls), else_=0))


def rolled_up(span: DateRange) -> ColumnElement[bool]:
    """Roll-up rows inside `span` (whole UTC days, so whole hours: exact), shadow
    answers left out as `in_range` does."""
    return and_(r.hour >= span.since, r.hour < span.until, r.status != "shadow")


@dataclass(frozen=True, slots=True)
class Spend:
    """The spend page's figures, all from one query."""

    totals: Totals
    series: Series
    groups: list[Group]


async def spend(db: AsyncEngine, span: DateRange, dim: Dimension, limit: int) -> Spend:
    """Totals, the chart and the breakdown by `dim` in `span`, from one aggregate over
    `call_rollups` per (time bucket, value of `dim`): the totals and the breakdown
    are sums of its rows, so all three agree by construction."""
    bucket = bucket_of(db.dialect.name, span.bucket, r.hour)
    col = DIMENSION_COLUMNS[dim]
    stmt = (
        select(
            bucket,
            col,
            func.sum(r.calls),
            _failed(),
            func.sum(r.input_tokens),
            func.sum(r.output_tokens),
            func.sum(r.cost_nanousd),
        )
        .where(rolled_up(span))
        .group_by(bucket, col)
        .order_by(bucket)
    )
    async with db.connect() as conn:
        rows = [
            _Row(b, _none(n), *(int(v or 0) for v in rest))
            for b, n, *rest in await conn.execute(stmt)
        ]
    return Spend(_totals(rows), _series(rows), _breakdown(rows, limit))


@dataclass(frozen=True, slots=True)
class _Row:
    bucket: str
    name: str | None
    calls: int
    failed: int
    input_tokens: int
    output_tokens: int
    nanos: int


def _none(value: str | None) -> str | None:
    return None if value is None or value == NONE else value


def _totals(rows: list[_Row]) -> Totals:
    return Totals(
        sum(x.calls for x in rows),
        sum(x.failed for x in rows),
        sum(x.input_tokens for x in rows),
        sum(x.output_tokens for x in rows),
        usd(sum(x.nanos for x in rows)),
    )


def _breakdown(rows: list[_Row], limit: int) -> list[Group]:
    """Per value of the dimension, most expensive first (ties by name)."""
    sums: dict[str | None, list[int]] = {}
    for x in rows:
        acc = sums.setdefault(x.name, [0, 0, 0, 0])
        for i, v in enumerate((x.calls, x.failed, x.input_tokens + x.output_tokens, x.nanos)):
            acc[i] += v
    order = sorted(sums, key=lambda k: (-sums[k][3], k is None, k or ""))
    return [Group(k, sums[k][0], sums[k][1], sums[k][2], usd(sums[k][3])) for k in order[:limit]]


def _series(rows: list[_Row]) -> Series:
    """Spend and calls per time bucket for the `MAX_SERIES` costliest values."""
    spend: dict[str, int] = {}
    for x in rows:
        spend[_label(x.name)] = spend.get(_label(x.name), 0) + x.nanos
    top = sorted(spend, key=lambda k: (-spend[k], k))[:MAX_SERIES]
    labels = sorted({x.bucket for x in rows})
    where = {label: i for i, label in enumerate(labels)}
    datasets = {name: [0.0] * len(labels) for name in top}
    calls = {name: [0] * len(labels) for name in top}
    for x in rows:
        key = _label(x.name) if _label(x.name) in datasets else "other"
        if key not in datasets:
            datasets[key], calls[key] = [0.0] * len(labels), [0] * len(labels)
        datasets[key][where[x.bucket]] += float(usd(x.nanos))
        calls[key][where[x.bucket]] += x.calls
    return Series(labels, datasets, calls)


def _label(name: str | None) -> str:
    return "(none)" if name is None else name
