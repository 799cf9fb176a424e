"""The same prompts through the HTTP app and through the replay harness leave the same
ledger records (ids and timestamps aside): the harness measures what the server does."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import httpx

from modelyard.evaluation.harness import ReplayHarness
from modelyard.ledger.records import CallRecord
from modelyard.server.app import create_app
from tests.evaluation.tiny import MODELS, tiny_outcomes

POLICIES = {
    "value": {"type": "utility", "lambda_cost": 2000, "mu_latency": 0},
    "cheap": {"type": "cheapest"},
}
ASIDE = {"id", "request_id", "decision_id", "started_at"}


def _comparable(record: CallRecord) -> dict[str, Any]:
    fields = {k: v for k, v in dataclasses.asdict(record).items() if k not in ASIDE}
    fields["reasons"] = {k: v for k, v in record.reasons.items() if k != "decision_id"}
    return fields


def _sse_text(body: str) -> str:
    text = []
    for line in body.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line.removeprefix("data: ")).get("choices", []):
                text.append(choice["delta"].get("content") or "")
    return "".join(text)


async def _over_http(harness: ReplayHarness, items: list[tuple[int, str, bool]]) -> list[str]:
    """POST each (row, policy, stream) to /v1/chat/completions; the answers' texts."""
    app = create_app(harness.engine)
    texts = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for row, policy, stream in items:
            body = harness.request(row, policy, stream=stream).model_dump(
                mode="json", exclude_none=True, exclude_defaults=True
            )
            body["model"] = policy
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
            if stream:
                texts.append(_sse_text(response.text))
            else:
                texts.append(response.json()["choices"][0]["message"]["content"])
                records = await harness.ledger.records(request_id=response.headers["x-request-id"])
                cost = Decimal(response.headers["x-modelyard-cost-usd"])
                assert cost == sum((r.cost_usd for r in records), Decimal(0))
    return texts


async def test_http_and_harness_write_identical_ledger_records() -> None:
    data = tiny_outcomes(missing=(3, "small"))  # one request needs a fallback attempt
    items = [
        (row, policy, stream)
        for policy in ("value", "cheap", "mid")
        for row in range(len(data))
        for stream in (False, True)
    ]
    async with ReplayHarness(data, POLICIES) as via_http:
        texts = await _over_http(via_http, items)
        http_records = await via_http.records()
    async with ReplayHarness(data, POLICIES) as harness:
        for row, policy, stream in items:
            await harness.run(policy, [row], stream=stream)
        harness_records = await harness.records()

    assert len(http_records) == len(harness_records) > len(items)  # the fallback shows
    assert [_comparable(r) for r in http_records] == [_comparable(r) for r in harness_records]
    # And the HTTP answers are the dataset's responses of the models the ledger names.
    answered = [r for r in http_records if r.status == "ok"]
    expected = [f"{r.model_id} says {row}" for r, (row, _, _) in zip(answered, items, strict=True)]
    assert texts == expected
    assert {r.model_id for r in answered} <= set(MODELS)
