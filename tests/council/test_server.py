"""A council through the HTTP app (ASGITransport): body and headers, the review
queue over HTTP, streaming, and a client that disconnects while members run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from modelyard.engine import Engine
from modelyard.ledger import InMemoryLedger
from modelyard.server.app import create_app
from modelyard.types import ChatRequest
from tests.cascade.helpers import engine_for
from tests.council.helpers import council, records

DISPUTED = {"small": "Answer: A", "vision-mid": "Answer: B", "frontier": "Answer: A"}
AGREED = {"small": "Answer: C", "vision-mid": "Answer: C", "frontier": "Answer: C"}
BODY = {"model": "council", "messages": [{"role": "user", "content": "Which letter?"}]}


@pytest.fixture
async def gateway(ledger: InMemoryLedger) -> AsyncIterator[tuple[httpx.AsyncClient, Engine]]:
    def answer(request: ChatRequest, upstream: str) -> str:
        # A question with "agree" in it gets unanimous members; others are split.
        return (AGREED if "agree" in str(request.messages[0].content) else DISPUTED)[upstream]

    engine = engine_for(answer, ledger, council(accept={"min_agreement": 0.9}))
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client, engine


async def test_an_agreed_council_answers_with_its_council_object(
    gateway: tuple[httpx.AsyncClient, Engine],
) -> None:
    client, _ = gateway
    body = {**BODY, "messages": [{"role": "user", "content": "agree?"}]}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    data = r.json()
    assert data["choices"][0]["message"]["content"] == "Answer: C"
    council_json = data["modelyard"]["council"]
    assert council_json["zone"] == "agreed"
    assert council_json["agreement"] == 1.0
    assert [m["model"] for m in council_json["members"]] == ["small", "vision-mid", "frontier"]
    assert all(m["cost_usd"] != "0" for m in council_json["members"])
    assert council_json["claims"][0]["supporting"] == ["small", "vision-mid", "frontier"]
    assert r.headers["x-modelyard-agreement"] == "1.0000"
    assert "x-modelyard-review" not in r.headers


async def test_a_disputed_council_is_flagged_and_resolved_over_http(
    gateway: tuple[httpx.AsyncClient, Engine],
) -> None:
    client, _ = gateway
    r = await client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200
    assert r.headers["x-modelyard-review"] == "pending"
    assert r.headers["x-modelyard-agreement"] == "0.6667"
    review_id = r.headers["x-modelyard-review-id"]
    assert r.json()["modelyard"]["council"]["review"] == {"id": review_id, "status": "pending"}

    listed = (await client.get("/v1/reviews", params={"status": "pending"})).json()
    assert [item["id"] for item in listed["data"]] == [review_id]
    shown = (await client.get(f"/v1/reviews/{review_id}")).json()
    assert [m["answer"] for m in shown["members"]] == list(DISPUTED.values())
    assert shown["answer"] == "Answer: A"

    resolved = await client.post(
        "/v1/reviews", json={"id": review_id, "action": "edit", "answer": "B", "by": "dana"}
    )
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["resolved_by"]) == ("edited", "dana")
    assert resolved.json()["resolved_at"] is not None
    again = await client.post("/v1/reviews", json={"id": review_id, "action": "accept"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "review_already_resolved"
    assert (await client.get("/v1/reviews", params={"status": "pending"})).json()["data"] == []


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "code"),
    [
        ("GET", "/v1/reviews/nope", None, 404, "review_not_found"),
        ("POST", "/v1/reviews", {"id": "nope", "action": "accept"}, 404, "review_not_found"),
        ("POST", "/v1/reviews", {"id": "x", "action": "edit"}, 400, None),
        ("POST", "/v1/reviews", {"id": "x", "action": "approve"}, 400, None),
        ("GET", "/v1/reviews?status=odd", None, 400, "invalid_request"),
        ("GET", "/v1/reviews?limit=0", None, 400, "invalid_request"),
    ],
)
async def test_bad_review_requests_get_openai_errors(
    gateway: tuple[httpx.AsyncClient, Engine],
    method: str,
    path: str,
    payload: Any,
    status: int,
    code: str | None,
) -> None:
    client, _ = gateway
    r = await client.request(method, path, json=payload)
    assert r.status_code == status
    assert "message" in r.json()["error"]
    if code is not None:
        assert r.json()["error"]["code"] == code


async def test_a_streamed_council_sends_the_adjudicated_answer_with_its_headers(
    gateway: tuple[httpx.AsyncClient, Engine],
) -> None:
    client, _ = gateway
    async with client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["x-modelyard-review"] == "pending"
        lines = [line async for line in r.aiter_lines() if line.startswith("data: {")]
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in lines
        if json.loads(line[6:])["choices"]
    )
    assert text == "Answer: A"


async def test_a_client_gone_while_members_run_cancels_them_billed_cancelled(
    ledger: InMemoryLedger,
) -> None:
    finished = anyio.Event()

    async def slow(request: ChatRequest, upstream: str) -> str:
        await anyio.sleep(30)
        finished.set()
        return "too late"

    engine = engine_for(slow, ledger, council())
    body = json.dumps({**BODY, "stream": True})
    messages = [{"type": "http.request", "body": body.encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep(0.1)  # the client waits a little, then hangs up
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("x", 80),
        "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"gone-c")],
    }
    with anyio.fail_after(5):
        await create_app(engine)(scope, receive, send)
    assert not finished.is_set()
    got = await records(ledger, "gone-c")
    assert sorted((r.model_id, r.role, r.status) for r in got) == [
        ("frontier", "member", "cancelled"),
        ("small", "member", "cancelled"),
        ("vision-mid", "member", "cancelled"),
    ]
