"""A cascade through the whole gateway over real sockets, driven by the official
openai SDK: the fake upstream answers both hops; the SQLite ledger gets every hop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

from modelyard.testing.upstream import ANTHROPIC_PATH, OPENAI_PATH
from tests.e2e.conftest import CLAUDE, GPT
from tests.e2e.policy_gateway import Gateway, gateway_with_policy

pytestmark = pytest.mark.slow

SCHEMA: Any = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
MESSAGES: Any = [{"role": "user", "content": "Oslo facts as JSON"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    policy = {
        "type": "cascade",
        "tiers": ["gpt", "claude"],
        "verifier": {"type": "schema"},
    }
    with gateway_with_policy(tmp_path_factory.mktemp("cascade-e2e"), "frugal", policy) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as sdk:
        yield sdk


def not_json_answer() -> dict[str, Any]:
    """What the OpenAI upstream says instead of the schema's JSON: prose."""
    return {
        "id": "chatcmpl-prose",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Oslo is big."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }


def test_a_valid_cheap_answer_is_served_by_the_first_hop(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    before = len(gateway.upstream.requests_to(ANTHROPIC_PATH))
    raw = client.chat.completions.with_raw_response.create(
        model="frugal",
        messages=MESSAGES,
        response_format=FORMAT,
        extra_headers={"x-request-id": "e1"},
    )
    answer = json.loads(raw.parse().choices[0].message.content or "")
    assert set(answer) >= {"city", "population"}
    assert raw.headers["x-modelyard-hops"] == f"1:{GPT}=accepted"
    assert raw.headers["x-modelyard-verdict"] == "accepted"
    assert raw.headers["x-modelyard-verifier-score"] == "1.0000"
    assert len(gateway.upstream.requests_to(ANTHROPIC_PATH)) == before, "no escalation"
    [record] = gateway.records("e1")
    assert (record.model_id, record.step, record.role, record.status) == (GPT, 1, "answer", "ok")
    assert Decimal(raw.headers["x-modelyard-cost-usd"]) == record.cost_usd


def test_an_invalid_cheap_answer_escalates_and_both_hops_are_billed(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    gateway.upstream.script.push(OPENAI_PATH, body=not_json_answer())
    raw = client.chat.completions.with_raw_response.create(
        model="frugal",
        messages=MESSAGES,
        response_format=FORMAT,
        extra_headers={"x-request-id": "e2"},
    )
    completion = raw.parse()
    assert completion.model == CLAUDE
    assert "Oslo is big." not in (completion.choices[0].message.content or "")
    assert raw.headers["x-modelyard-hops"] == f"1:{GPT}=rejected, 2:{CLAUDE}=final"
    assert raw.headers["x-modelyard-verdict"] == "final"
    records = gateway.records("e2")
    assert [(r.model_id, r.step, r.role, r.status) for r in records] == [
        (GPT, 1, "candidate", "escalated"),
        (CLAUDE, 2, "answer", "ok"),
    ]
    assert records[0].verifier_score == 0.0
    assert "not JSON" in (records[0].error_message or "")
    assert len({r.decision_id for r in records}) == 1
    assert Decimal(raw.headers["x-modelyard-cost-usd"]) == records[0].cost_usd + records[1].cost_usd
    assert records[0].cost_usd > 0


def test_a_streamed_cascade_shows_only_the_served_answer(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    gateway.upstream.script.push(OPENAI_PATH, body=not_json_answer())
    raw = client.chat.completions.with_raw_response.create(
        model="frugal",
        messages=MESSAGES,
        response_format=FORMAT,
        stream=True,
        extra_headers={"x-request-id": "e3"},
    )
    assert raw.headers["x-modelyard-hops"] == f"1:{GPT}=rejected, 2:{CLAUDE}=streamed"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert "Oslo is big." not in text
    assert set(json.loads(text)) >= {"city", "population"}
    records = gateway.records("e3")
    assert [(r.model_id, r.status, r.streamed) for r in records] == [
        (GPT, "escalated", False),
        (CLAUDE, "ok", True),
    ]
