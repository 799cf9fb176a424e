"""Write-ahead bookkeeping in the database: who is writing, and closing what the dead left.

Every process that opens a SQL ledger registers in `ledger_writers` under a fresh
owner id and beats every few seconds. Its `started` records carry that owner. A
`started` record is left by a dead process when its owner has no row, runs on this
host under a pid that no longer lives, or has not beaten for `stale_after_s`; the
sweep (at open, then on every writer tick) closes those as `interrupted`, billed at
the reservation estimate already on the record, and flagged `usage_source:
estimated`. The same-host pid check makes recovery after a local crash immediate;
the heartbeat covers replicas on other hosts sharing one PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import Final

from sqlalchemy import ColumnElement, Connection, and_, delete, insert, or_, select, update

from modelyard.ledger.migrations import call_records, ledger_writers
from modelyard.ledger.records import INTERRUPTED_STATUS, OPEN_STATUS
from modelyard.ledger.rollup import add_final

# How long a silent writer on another host is presumed alive. Its open records wait
# this long to be closed; a live process that stalls longer is closed by mistake,
# and its own completion then overwrites the interrupted record with the real one.
DEFAULT_STALE_AFTER_S: Final = 30.0
_HOST: Final = socket.gethostname()


def new_owner() -> str:
    """A fresh owner id: host and pid for people reading the table, plus a nonce."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs on this host (a zombie, killed but not yet reaped, is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state is the first field after the parenthesised command name.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def heartbeat(conn: Connection, owner: str) -> None:
    """Register `owner` or refresh its beat (re-registering if a sweep removed it)."""
    w = ledger_writers.c
    now = time.time()
    result = conn.execute(update(ledger_writers).where(w.owner == owner).values(heartbeat_at=now))
    if result.rowcount == 0:
        row = {"owner": owner, "host": _HOST, "pid": os.getpid(), "heartbeat_at": now}
        conn.execute(insert(ledger_writers).values(**row))


def sweep_dead_writers(
    conn: Connection, *, me: str, stale_after_s: float, rollup: bool = False
) -> int:
    """Unregister dead writers and close their `started` records as `interrupted`
    (counted in `call_rollups` too when `rollup`)."""
    w = ledger_writers.c
    now = time.time()
    dead = [
        owner
        for owner, host, pid, beat in conn.execute(select(w.owner, w.host, w.pid, w.heartbeat_at))
        if owner != me and (beat < now - stale_after_s or (host == _HOST and not pid_alive(pid)))
    ]
    if dead:
        conn.execute(delete(ledger_writers).where(w.owner.in_(dead)))
    c = call_records.c
    ownerless = or_(c.owner.is_(None), c.owner.not_in(select(w.owner)))
    orphaned = and_(c.status == OPEN_STATUS, ownerless)
    return _interrupt(conn, orphaned, rollup)


def _interrupt(conn: Connection, which: ColumnElement[bool], rollup: bool) -> int:
    """Close the open records `which` as interrupted; how many. The ids come back from
    the UPDATE itself (RETURNING), so the roll-up counts exactly the rows this
    transaction closed and now holds locked, never one a live process completed
    meanwhile."""
    stmt = update(call_records).where(which)
    values = {"status": INTERRUPTED_STATUS, "usage_source": "estimated"}
    if not rollup:
        return int(conn.execute(stmt.values(values)).rowcount)
    ids = list(conn.scalars(stmt.values(values).returning(call_records.c.id)))
    add_final(conn, ids)
    return len(ids)


def retire_writer(conn: Connection, owner: str, rollup: bool = False) -> None:
    """On a clean close: this process's still-open attempts will never complete, so
    close them as interrupted now, and unregister."""
    c = call_records.c
    _interrupt(conn, and_(c.status == OPEN_STATUS, c.owner == owner), rollup)
    conn.execute(delete(ledger_writers).where(ledger_writers.c.owner == owner))
