"""Columns derived from a record's `reasons` when it is written (migration m009).

The dashboard groups by task and prices each served answer at its decision's
reference model. Both live inside the `reasons` JSON; reading them out of JSON
for every row would make every page a full parse of the ledger, so the writer
stores them once, in indexed columns, next to the JSON they came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

# Longest value kept: task names and model ids are short; anything longer is not one.
_MAX_TEXT: Final = 200


def derived_columns(reasons: Mapping[str, Any]) -> dict[str, str | None]:
    """`task` and `reference_model` of a record whose decision explained itself as
    `reasons` (see `Decision.explain`).

    `reference_model` is the decision's most expensive qualified candidate for this
    very request (the highest `expected_cost_usd` among `candidates`; ties go to
    the higher-ranked one): what the request would have cost had the router always
    sent it to the top of the price list. None when the decision listed no
    candidates (a fixed model, or a record written by hand)."""
    requirements = reasons.get("requirements")
    task = requirements.get("task") if isinstance(requirements, Mapping) else None
    return {
        "task": _short_text(task),
        "reference_model": _short_text(_most_expensive(reasons.get("candidates"))),
    }


def _most_expensive(candidates: Any) -> str | None:
    if not isinstance(candidates, list):
        return None
    best: tuple[Decimal, str] | None = None
    for candidate in candidates:
        if not isinstance(candidate, Mapping) or not isinstance(candidate.get("model"), str):
            continue
        try:
            cost = Decimal(str(candidate.get("expected_cost_usd", "0")))
        except InvalidOperation:
            continue
        if not cost.is_finite():
            continue
        # Strictly greater: the first (higher-ranked) candidate wins a tie.
        if best is None or cost > best[0]:
            best = (cost, candidate["model"])
    return None if best is None else best[1]


def _short_text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_TEXT else None
