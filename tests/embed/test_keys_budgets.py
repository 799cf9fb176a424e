"""Keys and budgets apply to embeddings as to chat: a key's allowed models, its team
on every record, budget downgrades with their note, and 402 when nothing fits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from modelyard.admin import KeySpec, create_key, set_budget
from modelyard.budgets.wiring import Budgets, attach
from modelyard.config import BudgetsConfig
from modelyard.server.app import FrontSettings, create_app
from modelyard.server.auth import Authenticator
from tests.embed.conftest import LOCAL, SMALL, Gateway


@pytest.fixture
async def guarded(gw: Gateway) -> AsyncIterator[tuple[httpx.AsyncClient, Budgets]]:
    budgets = await attach(gw.engine, gw.ledger, BudgetsConfig(refresh_s=0.0), {})
    auth = Authenticator(keys=budgets.keys, cache_s=0.0)
    app = create_app(gw.engine, front=FrontSettings(), authenticator=auth)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client, budgets
    await budgets.close()


async def embed(client: httpx.AsyncClient, secret: str, model: str) -> httpx.Response:
    return await client.post(
        "/v1/embeddings",
        json={"model": model, "input": ["some text to embed"]},
        headers={"authorization": f"Bearer {secret}"},
    )


async def test_a_keys_models_rule_applies(
    gw: Gateway, guarded: tuple[httpx.AsyncClient, Budgets]
) -> None:
    client, budgets = guarded
    secret, _ = await create_key(
        budgets.keys, KeySpec(name="bot", team="search", models=["local/*"])
    )
    refused = await embed(client, secret, SMALL)
    assert refused.status_code == 403
    assert "may not use model 'acme/embed-small'" in refused.json()["error"]["message"]
    served = await embed(client, secret, "best")  # best would pick SMALL; the key bars it
    assert served.status_code == 200
    assert served.headers["x-modelyard-model"] == LOCAL
    [record] = await gw.ledger.records()
    assert (record.team, record.endpoint) == ("search", "embeddings")
    assert record.key_id is not None
    rejected = {r["model"]: r["reason"] for r in record.reasons["rejected"]}
    assert rejected[SMALL] == "not allowed for key 'bot'"


async def test_a_budget_downgrades_then_refuses(
    gw: Gateway, guarded: tuple[httpx.AsyncClient, Budgets]
) -> None:
    client, budgets = guarded
    secret, _ = await create_key(budgets.keys, KeySpec(name="bot", team="search"))
    # Less than one paid call's reservation: only the free local model fits.
    await set_budget(budgets.keys, "team", "search", "0.0000001/day")
    served = await embed(client, secret, "best")
    assert served.status_code == 200
    assert served.headers["x-modelyard-model"] == LOCAL
    assert served.headers["x-modelyard-budget-note"].startswith("downgraded:")
    [record] = await gw.ledger.records()
    assert record.budget_note == served.headers["x-modelyard-budget-note"]
    refused = await embed(client, secret, SMALL)
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert len(await gw.ledger.records()) == 1  # nothing billed for the refusal
