"""Keys, budgets and rate limits through the HTTP app (in-process state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from modelyard.admin import KeySpec, create_key, set_budget
from modelyard.keys import hash_key
from modelyard.types import ChatRequest, Completion, Usage
from tests.budgets.conftest import Gateway

ADMIN = {"authorization": "Bearer admin-secret-1234567890"}


def body(model: str = "best", max_tokens: int = 100, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": max_tokens,
        **extra,
    }


async def key(gw: Gateway, **spec: Any) -> str:
    secret, _ = await create_key(gw.keys, KeySpec(**{"name": "bot", "team": "support", **spec}))
    return secret


def auth(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def assert_openai_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code
    assert err["message"]
    return err


async def test_without_keys_a_loopback_gateway_is_open(gateway: Gateway) -> None:
    r = await gateway.client.post("/v1/chat/completions", json=body(), headers=auth("sk-x"))
    assert r.status_code == 200


async def test_once_a_key_exists_every_v1_call_needs_a_valid_one(gateway: Gateway) -> None:
    secret = await key(gateway)
    c = gateway.client
    cases = {
        "missing": {},
        "malformed": {"authorization": "Token abc"},
        "empty bearer": {"authorization": "Bearer "},
        "not ours": auth("sk-something"),
        "unknown": auth(secret[:-4] + "AAAA"),
        "10 kB": auth("my-" + "a" * 10_000),
    }
    for name, headers in cases.items():
        r = await c.post("/v1/chat/completions", json=body(), headers=headers)
        assert_openai_error(r, 401, "invalid_api_key"), name
        assert r.headers["www-authenticate"] == "Bearer"
    assert (await c.get("/v1/models")).status_code == 401
    r = await c.post("/v1/chat/completions", json=body(), headers=auth(secret))
    assert r.status_code == 200
    # A NUL cannot even travel in a header: refused at the door, not a 500.
    raw = [(b"authorization", b"Bearer my-\x00")]
    r = await c.post("/v1/chat/completions", json=body(), headers=raw)
    assert r.status_code == 400


async def test_revoked_and_expired_keys_get_401(gateway: Gateway) -> None:
    secret = await key(gateway)
    await gateway.keys.revoke("bot", datetime.now(UTC))
    r = await gateway.client.post("/v1/chat/completions", json=body(), headers=auth(secret))
    assert "revoked" in assert_openai_error(r, 401, "invalid_api_key")["message"]
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    secret2, _ = await create_key(
        gateway.keys, KeySpec(name="short", expires_days=1), now=two_days_ago
    )
    r = await gateway.client.post("/v1/chat/completions", json=body(), headers=auth(secret2))
    assert "expired" in assert_openai_error(r, 401, "invalid_api_key")["message"]


async def test_keys_are_stored_hashed_never_in_plaintext(gateway: Gateway) -> None:
    secret = await key(gateway)
    stored = await gateway.keys.by_name("bot")
    assert stored is not None
    assert stored.key_hash == hash_key(secret)
    from sqlalchemy import text

    async with gateway.keys.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_keys"))).all()
    assert secret not in repr(rows)


async def test_a_key_outside_its_rules_gets_403_naming_the_rule(gateway: Gateway) -> None:
    secret = await key(
        gateway,
        models=["small", "vision-*"],
        max_data_class="internal",
        policies=["best", "pinned"],
    )
    c = gateway.client
    r = await c.post("/v1/chat/completions", json=body("frontier"), headers=auth(secret))
    assert "model 'frontier'" in assert_openai_error(r, 403, "permission_denied")["message"]
    r = await c.post("/v1/chat/completions", json=body("cheapest"), headers=auth(secret))
    assert "policy 'cheapest'" in assert_openai_error(r, 403, "permission_denied")["message"]
    confidential = body("best", modelyard={"data_class": "confidential"})
    r = await c.post("/v1/chat/completions", json=confidential, headers=auth(secret))
    assert "confidential" in assert_openai_error(r, 403, "permission_denied")["message"]
    # A policy it may use plans only over the models it may use.
    r = await c.post("/v1/chat/completions", json=body("best"), headers=auth(secret))
    assert r.status_code == 200
    assert r.headers["x-modelyard-model"] == "vision-mid"


async def test_records_carry_key_team_user_and_tags(gateway: Gateway) -> None:
    secret = await key(gateway)
    headers = {**auth(secret), "x-modelyard-tags": "exp-1,beta"}
    r = await gateway.client.post("/v1/chat/completions", json=body(user="u-42"), headers=headers)
    assert r.status_code == 200
    (record,) = await gateway.ledger.records()
    stored = await gateway.keys.by_name("bot")
    assert stored is not None
    assert (record.key_id, record.team, record.caller, record.tags) == (
        stored.id,
        "support",
        "u-42",
        "exp-1,beta",
    )
    bad = {**auth(secret), "x-modelyard-tags": "no spaces allowed"}
    r = await gateway.client.post("/v1/chat/completions", json=body(), headers=bad)
    assert r.status_code == 400


async def test_a_tight_budget_downgrades_first_and_says_so(gateway: Gateway) -> None:
    secret = await key(gateway)
    # frontier would reserve ~$0.0026, vision-mid ~$0.0004: $0.001 fits only the latter.
    await set_budget(gateway.keys, "team", "support", "0.001/month")
    r = await gateway.client.post("/v1/chat/completions", json=body("best"), headers=auth(secret))
    assert r.status_code == 200, r.text
    assert r.headers["x-modelyard-model"] == "vision-mid"
    note = r.headers["x-modelyard-budget-note"]
    assert note.startswith("downgraded: team support")
    assert "left" in note
    remaining = Decimal(r.headers["x-modelyard-budget-remaining-usd"])
    assert Decimal(0) < remaining < Decimal("0.001")
    (record,) = await gateway.ledger.records()
    assert record.budget_note == note
    assert record.reasons["budget_note"] == note


async def test_when_nothing_fits_uncapped_max_tokens_is_capped(gateway: Gateway) -> None:
    secret = await key(gateway, models=["small"])
    # small with 100 output tokens reserves ~$0.0000427; $0.00002 pays for ~40 tokens.
    await set_budget(gateway.keys, "key", "bot", "0.00002/day")
    r = await gateway.client.post("/v1/chat/completions", json=body("best"), headers=auth(secret))
    assert r.status_code == 200, r.text
    assert r.headers["x-modelyard-budget-note"].startswith("capped max_tokens to ")
    (record,) = await gateway.ledger.records()
    assert record.reasons["requirements"]["max_output_tokens"] < 100


async def test_when_no_qualified_model_fits_402_names_the_budget_and_reset(
    gateway: Gateway,
) -> None:
    secret = await key(gateway, models=["small", "frontier"])
    await set_budget(gateway.keys, "team", "support", "0.000005/month")
    r = await gateway.client.post("/v1/chat/completions", json=body("best"), headers=auth(secret))
    err = assert_openai_error(r, 402, "budget_exceeded")
    assert "team support" in err["message"]
    assert "resets at 20" in err["message"]
    assert r.headers["x-modelyard-budget-resets-at"].startswith("20")
    assert await gateway.ledger.records() == []


async def test_refuse_budgets_refuse_instead_of_downgrading(gateway: Gateway) -> None:
    secret = await key(gateway)
    await set_budget(gateway.keys, "team", "support", "0.001/month", on_exhaust="refuse")
    r = await gateway.client.post("/v1/chat/completions", json=body("best"), headers=auth(secret))
    assert_openai_error(r, 402, "budget_exceeded")


async def test_spend_never_exceeds_a_budget_over_many_calls(gateway: Gateway) -> None:
    async def answer(request: ChatRequest, upstream: str) -> Completion:
        # Like a real model: 95 output tokens, or fewer when max_tokens is lower.
        out = min(95, request.output_limit or 95)
        return Completion("c", upstream, "x", usage=Usage(input_tokens=10, output_tokens=out))

    gateway.providers["cheapco"].complete_fn = answer
    secret = await key(gateway, models=["small"])
    await set_budget(gateway.keys, "user", "u1", "0.0002/day")
    statuses = []
    for _ in range(12):
        r = await gateway.client.post(
            "/v1/chat/completions", json=body("cheap", user="u1"), headers=auth(secret)
        )
        statuses.append(r.status_code)
    assert 402 in statuses
    assert 200 in statuses
    spent = sum(r.cost_usd for r in await gateway.ledger.records())
    assert spent <= Decimal("0.0002")


async def test_rate_limits_answer_429_with_retry_after(gateway: Gateway) -> None:
    secret = await key(gateway, rpm=2)
    c = gateway.client
    for _ in range(2):
        assert (
            await c.post("/v1/chat/completions", json=body(), headers=auth(secret))
        ).status_code == 200
    r = await c.post("/v1/chat/completions", json=body(), headers=auth(secret))
    assert_openai_error(r, 429, "rate_limit_exceeded")
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_admin_api_needs_the_admin_key_and_manages_keys(gateway: Gateway) -> None:
    c = gateway.client
    assert (await c.get("/admin/keys")).status_code == 401
    assert (await c.get("/admin/keys", headers=auth("wrong"))).status_code == 401
    r = await c.post(
        "/admin/keys", json={"name": "ci", "team": "qa", "budget": "5/day"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    secret = r.json()["key"]
    assert (
        await c.post("/v1/chat/completions", json=body(), headers=auth(secret))
    ).status_code == 200
    listed = (await c.get("/admin/keys", headers=ADMIN)).json()["data"]
    assert [k["name"] for k in listed] == ["ci"]
    assert "key_hash" not in listed[0]
    for bad in ("-5/month", "abc", "1e400/month", "5/fortnight"):
        r = await c.put(
            "/admin/budgets", json={"scope": "team", "subject": "qa", "budget": bad}, headers=ADMIN
        )
        assert r.status_code == 400, bad
    rotated = (await c.post("/admin/keys/ci/rotate", headers=ADMIN)).json()["key"]
    assert (
        await c.post("/v1/chat/completions", json=body(), headers=auth(secret))
    ).status_code == 401
    assert (await c.post("/admin/keys/ci/revoke", headers=ADMIN)).status_code == 200
    assert (
        await c.post("/v1/chat/completions", json=body(), headers=auth(rotated))
    ).status_code == 401
