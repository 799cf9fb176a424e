"""Cascades over HTTP (ASGI): headers name every hop, the verdict and the score; the
cost header is the total; `/v1/route` explains the plan; streams hide rejections."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, ClassVar

import httpx
import pytest

from modelyard.engine import Engine
from modelyard.ledger import InMemoryLedger
from modelyard.routing.cascade import CascadePolicy
from modelyard.server.app import create_app
from modelyard.verifiers.base import Verdict, VerifyContext
from tests.cascade.helpers import AGREE, engine_for

SCRIPT = {"small": "Answer: B", "vision-mid": "Answer: C", "local-llm": "(C)", "frontier": "D"}
POLICIES = {
    "frugal": {
        "type": "cascade",
        "tiers": ["small", ["vision-mid", "local-llm"], "frontier"],
        "verifier": AGREE,
    }
}
BODY = {"model": "frugal", "messages": [{"role": "user", "content": "Which letter?"}]}


@pytest.fixture
def cascade_engine(ledger: InMemoryLedger) -> Engine:
    return engine_for(SCRIPT, ledger, POLICIES)


@pytest.fixture
async def http(cascade_engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(cascade_engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


async def test_headers_name_every_hop_and_cost_is_the_total(
    http: httpx.AsyncClient, ledger: InMemoryLedger
) -> None:
    resp = await http.post("/v1/chat/completions", json=BODY, headers={"x-request-id": "h1"})
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == "Answer: C"
    assert resp.headers["x-modelyard-hops"] == "1:small=rejected, 2:vision-mid+local-llm=accepted"
    assert resp.headers["x-modelyard-verdict"] == "accepted"
    assert resp.headers["x-modelyard-verifier-score"] == "1.0000"
    assert resp.headers["x-modelyard-model"] == "vision-mid"
    records = await ledger.records(request_id="h1")
    total = sum((r.cost_usd for r in records), Decimal(0))
    assert len(records) == 3
    # The ledger says which answer the caller got.
    assert [(r.model_id, r.role) for r in records] == [
        ("small", "candidate"),
        ("vision-mid", "answer"),
        ("local-llm", "candidate"),
    ]
    assert Decimal(resp.headers["x-modelyard-cost-usd"]) == total
    assert Decimal(resp.json()["modelyard"]["cost_usd"]) == total
    # The ledger's reasons carry the cascade plan.
    assert records[0].reasons["cascade"]["steps"][1]["parallel"] is True


async def test_route_explains_the_cascade_without_calling_a_model(
    http: httpx.AsyncClient, ledger: InMemoryLedger
) -> None:
    resp = await http.post("/v1/route", json=BODY)
    decision = resp.json()["decision"]
    assert decision["kind"] == "cascade"
    assert [s["slots"] for s in decision["cascade"]["steps"]] == [
        [["small"]],
        [["vision-mid"], ["local-llm"]],
        [["frontier"]],
    ]
    assert decision["cascade"]["verifier"]["min_agree"] == 2
    assert await ledger.records() == []


async def test_a_stream_never_shows_a_rejected_answer(
    http: httpx.AsyncClient, ledger: InMemoryLedger
) -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    headers = {"x-request-id": "s1"}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
        assert resp.headers["x-modelyard-verdict"] == "accepted"
        assert resp.headers["x-modelyard-hops"].startswith("1:small=rejected")
        text = "".join([line async for line in resp.aiter_lines()])
    # Held back until accepted, so the whole cost was known before the first byte.
    records = await ledger.records(request_id="s1")
    total = sum((r.cost_usd for r in records), Decimal(0))
    assert Decimal(resp.headers["x-modelyard-cost-usd"]) == total
    events = [e for e in text.split("data: ") if e and e.strip() != "[DONE]"]
    contents = [
        (json.loads(e)["choices"] or [{"delta": {}}])[0]["delta"].get("content") or ""
        for e in events
    ]
    assert "".join(contents) == "Answer: C"
    # The usage chunk's cost is the caller's too: every hop.
    with_cost = [json.loads(e)["modelyard"]["cost_usd"] for e in events if "modelyard" in e]
    assert [Decimal(c) for c in with_cost] == [total]


class Broken:
    name: ClassVar[str] = "broken"

    async def verify(self, ctx: VerifyContext) -> Verdict:
        raise RuntimeError("verifier bug")


async def test_a_raising_verifier_is_never_a_500(
    http: httpx.AsyncClient, cascade_engine: Engine
) -> None:
    policy: Any = cascade_engine.router.policies["frugal"]
    assert isinstance(policy, CascadePolicy)
    policy.verifier = Broken()
    resp = await http.post("/v1/chat/completions", json=BODY)
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == "D"
    assert resp.headers["x-modelyard-hops"] == (
        "1:small=rejected, 2:vision-mid+local-llm=rejected, 3:frontier=final"
    )
    assert resp.headers["x-modelyard-verifier-score"] == "none"
