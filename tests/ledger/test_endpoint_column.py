"""Migration m011: `call_records.endpoint` says which endpoint a call served; every
record from before it (and every chat call) reads None."""

from __future__ import annotations

from datetime import timedelta

from modelyard.ledger import LedgerStore
from modelyard.ledger.migrations import MIGRATIONS
from tests.ledger.test_ledger import T0, rec


async def test_endpoint_round_trips_and_defaults_to_chat(ledger: LedgerStore) -> None:
    embedded = rec("r-emb", endpoint="embeddings", input_tokens=42)
    chat = rec("r-chat", started_at=T0 + timedelta(seconds=1))
    await ledger.write(embedded)
    await ledger.write(chat)
    got = await ledger.records()
    assert [(r.id, r.endpoint) for r in got] == [("r-emb", "embeddings"), ("r-chat", None)]


async def test_endpoint_is_written_ahead_and_kept_on_finish(ledger: LedgerStore) -> None:
    await ledger.start(rec("r-1", status="started", endpoint="embeddings"))
    await ledger.finish(rec("r-1", status="ok", input_tokens=9, endpoint="embeddings"))
    [record] = await ledger.records()
    assert (record.status, record.input_tokens, record.endpoint) == ("ok", 9, "embeddings")


def test_m011_is_the_last_released_migration_name() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert "m011_call_records_endpoint" in names
    assert names.index("m008_reviews") < names.index("m011_call_records_endpoint")
