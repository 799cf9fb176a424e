"""`/metrics` access (admin key or metrics token once keys exist), budget headroom
gauges, and the bound on key and team labels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from modelyard.admin import KeySpec, create_key, set_budget
from modelyard.ledger import SqlLedger
from modelyard.observability.labels import BoundedLabel
from modelyard.observability.prometheus_tap import PrometheusTelemetry
from modelyard.server.app import FrontSettings
from tests.budgets.conftest import Gateway, make_gateway
from tests.observability.scrape import delta, parse, scrape, value

ADMIN_KEY = "admin-secret-1234567890"
METRICS_TOKEN = "metrics-token-abcdefghijklmnop"
BODY = {"model": "cheap", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = await make_gateway(front=FrontSettings(admin_key=ADMIN_KEY, metrics_token=METRICS_TOKEN))
    yield gw
    await gw.client.aclose()
    await gw.budgets.close()
    await gw.ledger.close()


async def test_open_on_loopback_until_a_key_exists_then_token_or_admin_key(
    gateway: Gateway,
) -> None:
    c = gateway.client
    assert (await c.get("/metrics")).status_code == 200
    secret, _ = await create_key(gateway.keys, KeySpec(name="bot", team="support"))
    missing = await c.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["error"]["message"].startswith("missing metrics token")
    assert (await c.get("/metrics", headers=bearer("wrong-token"))).status_code == 401
    assert (await c.get("/metrics", headers=bearer(secret))).status_code == 401, (
        "an API key is not a metrics token"
    )
    assert (await c.get("/metrics", headers={"authorization": METRICS_TOKEN})).status_code == 401
    assert (await c.get("/metrics", headers=bearer(METRICS_TOKEN))).status_code == 200
    assert (await c.get("/metrics", headers=bearer(ADMIN_KEY))).status_code == 200


async def test_off_loopback_it_needs_a_token_even_without_keys() -> None:
    gw = await make_gateway(front=FrontSettings(require_auth=True, metrics_token=METRICS_TOKEN))
    try:
        assert (await gw.client.get("/metrics")).status_code == 401
        assert (await gw.client.get("/metrics", headers=bearer(METRICS_TOKEN))).status_code == 200
    finally:
        await gw.client.aclose()
        await gw.budgets.close()
        await gw.ledger.close()


async def test_closed_with_403_when_keys_exist_and_no_token_is_configured() -> None:
    gw = await make_gateway(front=FrontSettings())
    try:
        await create_key(gw.keys, KeySpec(name="bot"))
        r = await gw.client.get("/metrics", headers=bearer("anything"))
        assert r.status_code == 403
        assert "MODELYARD_METRICS_TOKEN" in r.json()["error"]["message"]
    finally:
        await gw.client.aclose()
        await gw.budgets.close()
        await gw.ledger.close()


async def test_budget_remaining_is_the_limit_minus_what_the_ledger_billed(
    gateway: Gateway,
) -> None:
    secret, key = await create_key(gateway.keys, KeySpec(name="bot", team="support"))
    await set_budget(gateway.keys, "team", "support", "5/month")
    gateway.budgets.gate.invalidate()
    for _ in range(3):
        r = await gateway.client.post("/v1/chat/completions", json=BODY, headers=bearer(secret))
        assert r.status_code == 200, r.text
    samples = await scrape(gateway.client, **bearer(ADMIN_KEY))
    spent = sum(r.cost_usd for r in await gateway.ledger.records())
    assert spent > 0
    labels = {"scope": "team", "subject": "support", "period": "month"}
    assert value(samples, "modelyard_budget_limit_usd", **labels) == 5.0
    assert value(samples, "modelyard_budget_remaining_usd", **labels) == pytest.approx(
        float(Decimal(5) - spent), abs=1e-9
    )
    records = await gateway.ledger.records()
    spender = {"key": key.id, "team": "support"}
    assert value(samples, "modelyard_key_tokens_total", **spender, type="input") == sum(
        r.input_tokens for r in records
    )
    assert value(samples, "modelyard_key_cost_usd_total", **spender) == pytest.approx(
        float(spent), rel=1e-9
    )


async def test_a_fresh_process_reads_budget_spend_from_the_ledger_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    front = FrontSettings(admin_key=ADMIN_KEY)
    first = await make_gateway(front=front, ledger=SqlLedger(url))
    secret, _ = await create_key(first.keys, KeySpec(name="bot", team="ops"))
    await set_budget(first.keys, "team", "ops", "2/day")
    first.budgets.gate.invalidate()
    r = await first.client.post("/v1/chat/completions", json=BODY, headers=bearer(secret))
    assert r.status_code == 200
    spent = sum(r.cost_usd for r in await first.ledger.records())
    await first.client.aclose()
    await first.budgets.close()
    await first.ledger.close()
    # A restarted process over the same ledger, that has served nothing yet.
    second = await make_gateway(front=front, ledger=SqlLedger(url))
    try:
        samples = await scrape(second.client, **bearer(ADMIN_KEY))
        left = value(
            samples, "modelyard_budget_remaining_usd", scope="team", subject="ops", period="day"
        )
        assert left == pytest.approx(float(Decimal(2) - spent), abs=1e-9)
        assert left < 2.0
    finally:
        await second.client.aclose()
        await second.budgets.close()
        await second.ledger.close()


async def test_key_and_team_labels_are_bounded(gateway: Gateway) -> None:
    gateway.engine.observe(PrometheusTelemetry(key_limit=1, team_limit=1))
    secrets = [
        (await create_key(gateway.keys, KeySpec(name=f"k{i}", team=f"team-{i}")))[0]
        for i in range(3)
    ]
    before = await scrape(gateway.client, **bearer(ADMIN_KEY))
    for secret in secrets:
        r = await gateway.client.post("/v1/chat/completions", json=BODY, headers=bearer(secret))
        assert r.status_code == 200
    after = await scrape(gateway.client, **bearer(ADMIN_KEY))
    records = await gateway.ledger.records()
    first = records[0]
    assert (
        delta(before, after, "modelyard_key_cost_usd_total", key=first.key_id or "", team="team-0")
        > 0
    )
    others = delta(before, after, "modelyard_key_cost_usd_total", key="other", team="other")
    assert others == pytest.approx(float(sum(r.cost_usd for r in records[1:])), rel=1e-9)
    for r in records[1:]:
        assert r.key_id is not None
        assert all(("key", r.key_id) not in labels for _, labels in after)


def test_bounded_label_admits_up_to_its_limit() -> None:
    bound = BoundedLabel(2)
    assert [bound(v) for v in ("a", "b", "c", "a", None)] == ["a", "b", "other", "a", "none"]
    with pytest.raises(ValueError, match="at least 1"):
        BoundedLabel(0)


def test_parse_reads_exposition_text() -> None:
    assert parse('x_total{a="1"} 2.0\n') == {("x_total", frozenset({("a", "1")})): 2.0}
