"""Budget texts and windows: bad input is a clear error, windows are UTC periods."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from modelyard.budgets.spec import Budget, BudgetSpecError, parse_budget
from modelyard.ledger.records import SpendScope


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("-5/month", "negative"),
        ("abc", "AMOUNT/PERIOD"),
        ("1e400/month", "above the maximum"),
        ("NaN/month", "finite"),
        ("Infinity/day", "finite"),
        ("5/fortnight", "unknown budget period"),
        ("5/0h", "unknown budget period"),
        ("5/30s", "unknown budget period"),
        ("x/month", "not a number"),
        ("5/month/extra", "AMOUNT/PERIOD"),
        ("9" * 100 + "/day", "AMOUNT/PERIOD"),
    ],
)
def test_bad_budget_texts_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(BudgetSpecError, match=why):
        parse_budget(text)


def test_good_budget_texts() -> None:
    assert parse_budget("50/month") == (Decimal(50), "month")
    assert parse_budget("$2.5/24h") == (Decimal("2.5"), "24h")
    assert parse_budget("0/day") == (Decimal(0), "day")


def test_calendar_windows_are_utc_periods_and_say_when_they_reset() -> None:
    b = Budget(SpendScope("team", "support"), Decimal(500), "month")
    w = b.window(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert w.resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert w.sum_keys == (w.add_key,)
    assert "20261201" in w.add_key
    week = Budget(SpendScope("global"), Decimal(1), "week").window(
        datetime(2026, 11, 29, 12, tzinfo=UTC)  # a Sunday
    )
    assert week.bucket_bounds[0][0] == datetime(2026, 11, 23, tzinfo=UTC)  # Monday


def test_a_rolling_window_counts_sixty_buckets_covering_at_least_its_length() -> None:
    w = Budget(SpendScope("key", "k1"), Decimal(1), "1h").window(datetime.now(UTC))
    assert len(w.sum_keys) == 60
    first, last = w.bucket_bounds[0][0], w.bucket_bounds[-1][1]
    assert (last - first).total_seconds() == 3600
