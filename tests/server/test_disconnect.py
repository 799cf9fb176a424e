"""A caller that hangs up cancels its upstream call, and the attempt is still billed."""

from __future__ import annotations

import json
from typing import Any

import anyio

from modelyard.engine import Engine
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from modelyard.types import ChatRequest, Completion


async def test_disconnect_cancels_the_upstream_call_and_bills_it(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    finished = anyio.Event()

    async def slow(req: ChatRequest, upstream: str) -> Completion:
        await anyio.sleep(30)
        finished.set()
        return Completion(id="c", model=upstream, content="too late")

    providers["cheapco"] = FunctionProvider(slow)
    body = json.dumps({"model": "cheap", "messages": [{"role": "user", "content": "hi"}]})
    messages = [{"type": "http.request", "body": body.encode(), "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep(0.1)  # the client waits a little, then hangs up
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

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
        "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"gone-1")],
    }
    with anyio.fail_after(5):
        await create_app(engine)(scope, receive, send)
    assert not finished.is_set()
    (record,) = await ledger.records(request_id="gone-1")
    assert record.status == "cancelled"
    assert record.latency_ms < 5000
    assert sent[0]["status"] == 499
