"""Migration m012 (issue 15, dashboard speed): the hourly roll-up `call_rollups`.

Kept apart from `migrations.py` (which lists it) because it carries a data
backfill: every final record already in the ledger is counted, in one
`INSERT … SELECT … GROUP BY` done by the database. Like every released migration
it is frozen: a change is a new one.
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData


def m012_call_rollups(conn: Connection) -> None:
    """Create `call_rollups` (see `ledger.rollup`) and fill it from `call_records`."""
    # Imported here: `rollup` imports `migrations`, which lists this function.
    from modelyard.ledger.rollup import backfill, call_rollups_v1

    call_rollups_v1(MetaData()).create(conn)
    backfill(conn)
