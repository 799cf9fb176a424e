"""Migration m009 (issue 15, the dashboard): derived columns and covering indexes.

Kept apart from `migrations.py` (which lists it) because it carries a data
backfill. Like every released migration it is frozen: a change is a new one.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import JSON, Column, Connection, MetaData, Table, Text, bindparam, select, text

# m009's indexes: (name, columns). Every dashboard aggregate reads a date range and
# a few narrow columns of each row; these indexes hold all of them, so the
# aggregates read an index alone (SQLite covering index, PostgreSQL index-only
# scan) instead of visiting each wide row (`reasons` is JSON). The first serves
# spend by time, model, key, team and task; the second, led by status, serves the
# served-answer and specialist aggregates and the explorer's status filter.
DASHBOARD_INDEXES: Final = (
    (
        "ix_call_records_dashboard",
        "started_at, status, model_id, key_id, team, task,"
        " cost_nanousd, input_tokens, output_tokens",
    ),
    (
        "ix_call_records_status_started_at",
        "status, started_at, role, reference_model, task, confidence,"
        " input_tokens, cached_input_tokens, output_tokens, cost_nanousd",
    ),
)
_BACKFILL_BATCH: Final = 5000


def m009_dashboard(conn: Connection) -> None:
    """The dashboard (issue 15): `task` and `reference_model` on `call_records`, derived
    from `reasons` (`ledger.derived`), existing rows filled in batches; and indexes
    for its filters. Additive only."""
    from modelyard.ledger.derived import derived_columns

    for column in ("task", "reference_model"):
        conn.execute(text(f"ALTER TABLE call_records ADD COLUMN {column} TEXT"))
    for name, columns in DASHBOARD_INDEXES:
        conn.execute(text(f"CREATE INDEX {name} ON call_records ({columns})"))
    table = Table(
        "call_records",
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("reasons", JSON),
        Column("task", Text),
        Column("reference_model", Text),
    )
    update_row = (
        table.update()
        .where(table.c.id == bindparam("b_id"))
        .values(task=bindparam("b_task"), reference_model=bindparam("b_reference_model"))
    )
    last = ""
    while True:
        rows = conn.execute(
            select(table.c.id, table.c.reasons)
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(_BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        params = []
        for record_id, reasons in rows:
            derived = derived_columns(reasons if isinstance(reasons, dict) else {})
            params.append({"b_id": record_id, **{f"b_{k}": v for k, v in derived.items()}})
        conn.execute(update_row, params)
        last = rows[-1][0]
