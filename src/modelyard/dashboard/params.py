"""The dashboard's query parameters, checked: a bad one is a clear message, never a 500.

Values only ever reach SQL as bound parameters, so quotes, `%`, `;` or unicode in a
filter are just text to compare with; they still must be short and printable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal

from modelyard.ledger.records import AttemptStatus

DEFAULT_DAYS: Final = 30
MAX_FILTER_CHARS: Final = 200
# Pages up to this many days are drawn by hour, longer ones by day.
HOURLY_UP_TO_DAYS: Final = 3
STATUSES: Final[tuple[AttemptStatus, ...]] = (
    "ok",
    "error",
    "escalated",
    "cancelled",
    "started",
    "interrupted",
    "shadow",
)
Dimension = Literal["model", "key", "team", "task"]
DIMENSIONS: Final[tuple[Dimension, ...]] = ("model", "key", "team", "task")
Bucket = Literal["hour", "day"]


class BadParameter(ValueError):
    """A query parameter the dashboard cannot use; its message is shown to the user."""


@dataclass(frozen=True, slots=True)
class DateRange:
    """Whole UTC days `first` .. `last`, inclusive: records with `since <= started_at < until`."""

    first: date
    last: date

    @property
    def since(self) -> datetime:
        return datetime.combine(self.first, time(), UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), UTC)

    @property
    def bucket(self) -> Bucket:
        return "hour" if (self.last - self.first).days < HOURLY_UP_TO_DAYS else "day"


def date_range(since: str | None, until: str | None, today: date) -> DateRange:
    """The range from `since`/`until` (`YYYY-MM-DD`, UTC), by default the last 30 days."""
    last = _day(until, "to") if until else today
    first = _day(since, "from") if since else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise BadParameter(
            f"the date range is backwards: 'from' ({first.isoformat()}) is after "
            f"'to' ({last.isoformat()}); swap them"
        )
    return DateRange(first, last)


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadParameter(f"'{name}' must be a date like 2025-03-01, got {value[:40]!r}") from None


def text_filter(value: str | None, name: str) -> str | None:
    """A free-text filter (model id, key id): None when empty; refused when too long
    or holding control characters (no real id has them)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_FILTER_CHARS:
        raise BadParameter(f"'{name}' is longer than {MAX_FILTER_CHARS} characters")
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise BadParameter(f"'{name}' holds control characters")
    return value


def status_filter(value: str | None) -> AttemptStatus | None:
    """One of the ledger's attempt statuses, or None."""
    if value is None or not value.strip():
        return None
    for status in STATUSES:
        if value.strip() == status:
            return status
    raise BadParameter(f"'status' must be one of {', '.join(STATUSES)}, got {value[:40]!r}")


def dimension(value: str | None) -> Dimension:
    """What to break spend down by (default: model)."""
    if value is None or not value.strip():
        return "model"
    for dim in DIMENSIONS:
        if value.strip() == dim:
            return dim
    raise BadParameter(f"'by' must be one of {', '.join(DIMENSIONS)}, got {value[:40]!r}")
