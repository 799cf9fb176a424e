"""A council through the whole gateway over real sockets (uvicorn), driven by the
official openai SDK: both members answer from the fake upstream; the SQLite ledger
gets every member's call and the review queue the disputed result."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from modelyard.testing.upstream import ANTHROPIC_PATH, OPENAI_PATH
from tests.e2e.conftest import CLAUDE, GPT
from tests.e2e.policy_gateway import Gateway, gateway_with_policy

pytestmark = pytest.mark.slow
MESSAGES: Any = [{"role": "user", "content": "Which letter?"}]


def openai_says(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }


def anthropic_says(text: str) -> dict[str, Any]:
    return {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 5},
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    policy = {
        "type": "council",
        "members": ["gpt", "claude"],
        "adjudicator": "vote",
        "accept": {"min_agreement": 0.67},
    }
    with gateway_with_policy(tmp_path_factory.mktemp("council-e2e"), "council", policy) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as sdk:
        yield sdk


def test_an_agreeing_council_is_served_and_every_member_billed(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    gateway.upstream.script.push(OPENAI_PATH, body=openai_says("Answer: C"))
    gateway.upstream.script.push(ANTHROPIC_PATH, body=anthropic_says("The answer is (C)."))
    raw = client.chat.completions.with_raw_response.create(
        model="council", messages=MESSAGES, extra_headers={"x-request-id": "c1"}
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Answer: C"
    assert raw.headers["x-modelyard-agreement"] == "1.0000"
    assert "x-modelyard-review" not in raw.headers
    council = raw.http_response.json()["modelyard"]["council"]
    assert council["votes"] == {"C": [GPT, CLAUDE]}
    records = gateway.records("c1")
    assert sorted((r.model_id, r.step, r.role, r.status) for r in records) == sorted(
        [(GPT, 1, "answer", "ok"), (CLAUDE, 1, "member", "ok")]
    )
    assert len({r.decision_id for r in records}) == 1
    assert Decimal(raw.headers["x-modelyard-cost-usd"]) == sum(r.cost_usd for r in records)


def test_a_split_council_goes_to_review_and_is_resolved_over_http(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    gateway.upstream.script.push(OPENAI_PATH, body=openai_says("Answer: A"))
    gateway.upstream.script.push(ANTHROPIC_PATH, body=anthropic_says("Answer: B"))
    raw = client.chat.completions.with_raw_response.create(
        model="council", messages=MESSAGES, extra_headers={"x-request-id": "c2"}
    )
    assert raw.headers["x-modelyard-review"] == "pending"
    assert raw.headers["x-modelyard-agreement"] == "0.5000"
    review_id = raw.headers["x-modelyard-review-id"]
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        pending = http.get("/v1/reviews", params={"status": "pending"}).json()["data"]
        assert review_id in [r["id"] for r in pending]
        done = http.post("/v1/reviews", json={"id": review_id, "action": "reject", "by": "op"})
        assert done.status_code == 200
        assert done.json()["status"] == "rejected"


def test_a_streamed_council_streams_the_voted_answer(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    gateway.upstream.script.push(OPENAI_PATH, body=openai_says("Answer: D"))
    gateway.upstream.script.push(ANTHROPIC_PATH, body=anthropic_says("Answer: D"))
    stream = client.chat.completions.create(
        model="council", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "c3"}
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Answer: D"
    roles = sorted(r.role or "" for r in gateway.records("c3"))
    assert roles == ["answer", "member"]
