"""A council over the test stack: models answer from a script (see cascade helpers)."""

from __future__ import annotations

from typing import Any

from modelyard.ledger import CallRecord, InMemoryLedger

MEMBERS = ["small", "vision-mid", "frontier"]


def council(members: Any = None, adjudicator: str = "vote", **extra: Any) -> dict[str, Any]:
    return {
        "council": {
            "type": "council",
            "members": MEMBERS if members is None else members,
            "adjudicator": adjudicator,
            **extra,
        }
    }


def rows(records: list[CallRecord]) -> list[tuple[str, int | None, str | None, str]]:
    return [(r.model_id, r.step, r.role, r.status) for r in records]


async def records(ledger: InMemoryLedger, request_id: str) -> list[CallRecord]:
    return list(await ledger.records(request_id=request_id))
