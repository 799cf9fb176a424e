"""The dashboard's SQL on both databases (SQLite and PostgreSQL), and migration m009."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from modelyard.catalog.prices import card_prices
from modelyard.dashboard import explorer, savings, sql, status
from modelyard.dashboard.params import date_range
from modelyard.ledger import SqlLedger
from modelyard.ledger import migrations as migrations_module
from modelyard.ledger.derived import derived_columns
from tests.dashboard import data
from tests.ledger.conftest import Backend, _make_backend, pg_schema, postgres_url  # noqa: F401

PRICES = {m: card_prices(p_in, p_out, cached) for m, (p_in, p_out, cached) in data.PRICES.items()}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    return _make_backend(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
async def filled(backend: Backend) -> AsyncIterator[tuple[SqlLedger, data.Ledger]]:
    ledger = data.build(60)
    store = backend.make()
    assert isinstance(store, SqlLedger)
    await store.open()
    for record in ledger.records:
        await store.write(record)
    try:
        yield store, ledger
    finally:
        await store.close()


async def test_totals_series_and_savings_match_the_rows(
    filled: tuple[SqlLedger, data.Ledger],
) -> None:
    store, ledger = filled
    span = date_range(None, None, datetime.now(UTC).date())
    spend = await sql.spend(store.engine, span, "model", 50)
    totals = spend.totals
    assert totals.cost_usd == ledger.actual()
    assert totals.calls == len(ledger.records)
    assert totals.failed == sum(r.status == "error" for r in ledger.records)
    assert sum(g.cost_usd for g in spend.groups) == ledger.actual()
    assert {g.name: g.calls for g in spend.groups} == {
        m: sum(r.model_id == m for r in ledger.records)
        for m in {r.model_id for r in ledger.records}
    }
    by_day = spend.series
    drawn = sum(sum(v) for v in by_day.datasets.values())
    assert abs(Decimal(str(drawn)) - ledger.actual()) < Decimal("0.000001")
    by_key = await sql.spend(store.engine, span, "key", 50)
    assert {g.name for g in by_key.groups} == set(data.KEYS)
    per_decision = await savings.savings(store.engine, span, savings.PER_DECISION, PRICES)
    assert per_decision.actual_usd == ledger.actual()
    assert per_decision.counterfactual_usd == ledger.counterfactual()
    fixed = await savings.savings(store.engine, span, "frontier", PRICES)
    assert fixed.counterfactual_usd == ledger.counterfactual("frontier")


async def test_hourly_buckets_are_utc_hours(filled: tuple[SqlLedger, data.Ledger]) -> None:
    store, ledger = filled
    today = datetime.now(UTC).date()
    span = date_range((today - timedelta(days=1)).isoformat(), today.isoformat(), today)
    got = (await sql.spend(store.engine, span, "team", 50)).series
    recent = [r for r in ledger.records if r.started_at >= span.since]
    hours = {r.started_at.strftime("%Y-%m-%d %H") for r in recent}
    assert set(got.labels) == hours


async def test_explorer_pages_and_story(filled: tuple[SqlLedger, data.Ledger]) -> None:
    store, ledger = filled
    seen: list[str] = []
    cursor = None
    while True:
        rows, more = await explorer.recent(store.engine, explorer.Filters(), cursor)
        seen += [r.id for r in rows]
        if more is None:
            break
        cursor = explorer.parse_cursor(more)
    newest_first = sorted(ledger.records, key=lambda r: (r.started_at, r.id), reverse=True)
    assert seen == [r.id for r in newest_first]
    story = await explorer.story(store.engine, data.FALLBACK_REQUEST)
    assert story is not None
    assert [a.status for a in story.attempts] == ["error", "ok"]


async def test_specialist_bins_on_both_databases(filled: tuple[SqlLedger, data.Ledger]) -> None:
    store, ledger = filled
    span = date_range(None, None, datetime.now(UTC).date())
    [intents] = await status.specialist_coverage(store.engine, span)
    confident = [r.confidence for r in ledger.records if r.confidence is not None]
    expected = [0] * status.CONFIDENCE_BINS
    for value in confident:
        expected[min(int(value * 10), 9)] += 1
    assert intents.bins == expected


def test_derived_columns_pick_the_most_expensive_candidate() -> None:
    reasons = {
        "requirements": {"task": "intents"},
        "candidates": [
            {"model": "a", "expected_cost_usd": "0.001"},
            {"model": "b", "expected_cost_usd": "0.010"},
            {"model": "c", "expected_cost_usd": "0.010"},
            {"model": "d", "expected_cost_usd": "NaN"},
            "junk",
        ],
    }
    assert derived_columns(reasons) == {"task": "intents", "reference_model": "b"}
    assert derived_columns({}) == {"task": None, "reference_model": None}


async def test_m009_fills_existing_rows(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [name for name, _ in migrations_module.MIGRATIONS]
    before = migrations_module.MIGRATIONS[: names.index("m009_dashboard")]
    monkeypatch.setattr(migrations_module, "MIGRATIONS", before)
    old = backend.make()
    assert isinstance(old, SqlLedger)
    await old.open()
    reasons = data.build(1).records[0].reasons
    async with old.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO call_records (id, request_id, decision_id, policy, model_id,"
                " deployment, upstream_model, attempt, started_at, latency_ms, status,"
                " input_tokens, output_tokens, cached_input_tokens, cost_nanousd, streamed,"
                " reasons) VALUES ('old', 'r', 'd', 'auto', 'small', 'cheapco', 'x', 1,"
                " '2025-03-01 10:00:00', 1.0, 'ok', 1, 1, 0, 0, false, :reasons)"
            ),
            {"reasons": json.dumps(reasons)},
        )
    await old.close()
    monkeypatch.undo()
    new = backend.make()
    assert isinstance(new, SqlLedger)
    await new.open()
    try:
        async with new.engine.connect() as conn:
            row = (await conn.execute(text("SELECT task, reference_model FROM call_records"))).one()
        assert tuple(row) == (reasons["requirements"]["task"], "frontier")
    finally:
        await new.close()
