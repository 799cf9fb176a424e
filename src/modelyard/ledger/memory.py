"""An in-memory `LedgerStore`, for tests and offline evaluation.

It is the reference for the SQL store's semantics: records are normalised the
way a database round trip would normalise them (cost to the nano-dollar, time
to UTC, `reasons` through JSON), so code tested against this store sees what
it would see against SQLite or PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Final, Literal

from modelyard.ledger.migrations import as_utc, nanousd_to_usd, usd_to_nanousd
from modelyard.ledger.records import (
    CACHED_STATUS,
    INTERRUPTED_STATUS,
    NOT_ERRORS,
    OPEN_STATUS,
    CallRecord,
    Exchange,
    SpendScope,
    UsageRow,
)

GroupBy = Sequence[Literal["model", "day"]]


def check_group_by(by: GroupBy) -> tuple[bool, bool]:
    """`(by_model, by_day)` for a usage report's `by`; anything else is refused."""
    unknown = set(by) - {"model", "day"}
    if unknown:
        raise ValueError(f"usage can be grouped by 'model' and/or 'day', not {sorted(unknown)}")
    return "model" in by, "day" in by


def check_window(since: datetime | None, until: datetime | None) -> None:
    """Refuse naive window bounds, as records with naive timestamps are refused."""
    if since is not None:
        as_utc(since, "since")
    if until is not None:
        as_utc(until, "until")


def check_limit(limit: int) -> None:
    """A negative limit is a bug in the caller, not a request for everything."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def record_order(record: CallRecord) -> tuple[datetime, int, str]:
    """Oldest first; attempts of one request that start together stay in attempt order."""
    return (record.started_at, record.attempt, record.id)


def usage_order(row: UsageRow) -> tuple[str, date]:
    """Usage rows by model, then day (code-point order, the same on every backend)."""
    return (row.model_id or "", row.day or date.min)


# What neither database can store as text: NUL (PostgreSQL) and lone surrogates
# (not UTF-8). Client input with them is refused at the door; text from upstreams
# (error messages, answers) is escaped to U+FFFD here, so a write never fails on it.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
_TEXT_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(CallRecord) if f.type in ("str", "str | None")
)


def storable(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def storable_json(value: Any) -> Any:
    """A JSON round trip of `value` (a detached copy), with unstorable text escaped."""
    text = json.dumps(value, ensure_ascii=False)
    copy = json.loads(text)
    # json.dumps writes NUL as the escape `\u0000`; lone surrogates stay raw.
    if "\\u0000" in text or _UNSTORABLE.search(text):
        return _scrubbed(copy)
    return copy


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {storable(k): _scrubbed(v) for k, v in value.items()}
    return value


def normalise(record: CallRecord) -> CallRecord:
    """`record` as it reads back from storage: UTC, whole nano-dollars, JSON `reasons`,
    text storable in both databases."""
    texts: dict[str, Any] = {
        name: storable(value)
        for name in _TEXT_FIELDS
        if isinstance(value := getattr(record, name), str) and _UNSTORABLE.search(value)
    }
    return dataclasses.replace(
        record,
        started_at=as_utc(record.started_at, "started_at"),
        cost_usd=nanousd_to_usd(usd_to_nanousd(record.cost_usd)),
        # Through JSON, like the SQL column: unserialisable reasons fail here too,
        # and the stored copy shares no mutable state with the caller's dict.
        reasons=storable_json(record.reasons),
        **texts,
    )


def normalise_exchange(exchange: Exchange) -> Exchange:
    """`exchange` as it reads back from storage: UTC, messages through JSON, text
    storable (an upstream's answer may hold anything)."""
    return dataclasses.replace(
        exchange,
        created_at=as_utc(exchange.created_at, "created_at"),
        messages=storable_json(exchange.messages),
        response=None if exchange.response is None else storable(exchange.response),
        task=None if exchange.task is None else storable(exchange.task),
    )


class InMemoryLedger:
    """A `LedgerStore` that keeps records in a dict; lost when the process exits."""

    def __init__(self) -> None:
        self._records: dict[str, CallRecord] = {}
        self._exchanges: dict[str, Exchange] = {}
        self._open = False

    async def open(self) -> None:
        """Mark the store open (there is nothing to connect to or migrate)."""
        self._open = True

    async def close(self) -> None:
        """Mark the store closed; records are kept, as a database file keeps them."""
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("ledger is not open: call open() first")

    async def write(self, record: CallRecord) -> None:
        """Keep a normalised copy of `record`; a second record with the same id is refused."""
        self._check_open()
        stored = normalise(record)
        if stored.id in self._records:
            raise ValueError(f"call record {stored.id!r} was already written")
        self._records[stored.id] = stored

    async def start(self, record: CallRecord) -> None:
        """Keep a write-ahead (`started`) record; completed later under the same id."""
        if record.status != OPEN_STATUS:
            raise ValueError(f"a write-ahead record must be {OPEN_STATUS!r}, not {record.status!r}")
        await self.write(record)

    async def finish(self, record: CallRecord) -> None:
        """Complete the started record: its outcome replaces the estimate, in place."""
        self._check_open()
        started = self._records.get(record.id)
        if started is None:
            await self.write(record)
            return
        # Who, what and when were normalised when the attempt started; only the
        # outcome is new, so the decision's reasons are not serialised twice.
        settled = normalise(dataclasses.replace(record, reasons={}))
        self._records[record.id] = dataclasses.replace(
            settled, started_at=started.started_at, reasons=started.reasons
        )

    async def discard(self, record_id: str) -> None:
        """Forget a started record whose call never reached the network."""
        self._check_open()
        stored = self._records.get(record_id)
        if stored is not None and stored.status == OPEN_STATUS:
            del self._records[record_id]

    async def recover(self) -> int:
        """Nothing to recover: records in memory die with the process that wrote them."""
        self._check_open()
        return 0

    async def records(
        self, *, request_id: str | None = None, limit: int = 1000
    ) -> Sequence[CallRecord]:
        """The oldest `limit` records, oldest first, optionally only one request's."""
        self._check_open()
        check_limit(limit)
        selected = (
            r for r in self._records.values() if request_id is None or r.request_id == request_id
        )
        return sorted(selected, key=record_order)[:limit]

    async def write_exchange(self, exchange: Exchange) -> None:
        """Keep a normalised copy; one exchange per record id."""
        self._check_open()
        if exchange.record_id in self._exchanges:
            raise ValueError(f"exchange for record {exchange.record_id!r} was already written")
        self._exchanges[exchange.record_id] = normalise_exchange(exchange)

    async def exchanges(self, *, task: str, limit: int = 100_000) -> Sequence[Exchange]:
        """One task's captured exchanges, oldest first."""
        self._check_open()
        check_limit(limit)
        selected = (e for e in self._exchanges.values() if e.task == task)
        return sorted(selected, key=lambda e: (e.created_at, e.record_id))[:limit]

    async def usage(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        by: GroupBy = ("model", "day"),
    ) -> Sequence[UsageRow]:
        """Calls, errors, tokens and exact cost per model and/or UTC day, in [since, until)."""
        self._check_open()
        by_model, by_day = check_group_by(by)
        check_window(since, until)
        in_window = (
            r
            for r in self._records.values()
            if (since is None or r.started_at >= since) and (until is None or r.started_at < until)
        )
        return _aggregate(in_window, by_model=by_model, by_day=by_day)

    async def spend(self, scope: SpendScope, since: datetime, until: datetime) -> int:
        """Nano-dollars spent by `scope` in [since, until), open attempts at their estimate."""
        self._check_open()
        return sum(
            usd_to_nanousd(r.cost_usd)
            for r in self._records.values()
            if since <= r.started_at < until and scope.matches(r)
        )


def _aggregate(records: Iterable[CallRecord], *, by_model: bool, by_day: bool) -> list[UsageRow]:
    """Group and sum; cost is summed in integer nano-dollars, as the SQL store does."""
    # key -> [calls, errors, input_tokens, output_tokens, cost_nanousd, interrupted, cached]
    totals: dict[tuple[str | None, date | None], list[int]] = defaultdict(lambda: [0] * 7)
    for r in records:
        if r.status == OPEN_STATUS:
            continue  # not settled yet (see SqlLedger.usage)
        key = (r.model_id if by_model else None, r.started_at.date() if by_day else None)
        t = totals[key]
        t[0] += 1
        t[1] += r.status not in NOT_ERRORS
        t[2] += r.input_tokens
        t[3] += r.output_tokens
        t[4] += usd_to_nanousd(r.cost_usd)
        t[5] += r.status == INTERRUPTED_STATUS
        t[6] += r.status == CACHED_STATUS
    rows = [
        UsageRow(
            model_id=model_id,
            day=day,
            calls=calls,
            errors=errors,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=nanousd_to_usd(nanos),
            interrupted=interrupted,
            cached=cached,
        )
        for (model_id, day), (
            calls,
            errors,
            input_tokens,
            output_tokens,
            nanos,
            interrupted,
            cached,
        ) in totals.items()
    ]
    return sorted(rows, key=usage_order)
