"""Jinja filters: money as exact Decimal text, shares as percentages."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from jinja2 import Environment

MONEY_PLACES = Decimal("0.000001")


def money(value: Decimal | None) -> str:
    """`$1,234.567890`: six places, half-even, so cheap calls do not round to zero."""
    if value is None:
        return "–"
    exact = Decimal(value).quantize(MONEY_PLACES, rounding=ROUND_HALF_EVEN)
    sign = "-" if exact < 0 else ""
    return f"{sign}${abs(exact):,.6f}"


def percent(value: Decimal | float | None) -> str:
    if value is None:
        return "–"
    return f"{Decimal(value) * 100:.1f}%"


def install_filters(env: Environment) -> None:
    filters: dict[str, Any] = {"money": money, "percent": percent}
    env.filters.update(filters)
