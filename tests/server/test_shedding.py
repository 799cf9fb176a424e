"""Overload shedding: past `max_in_flight` chat requests, a 503 with Retry-After at once."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from prometheus_client import REGISTRY

from modelyard.engine import Engine
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import FrontSettings, create_app
from modelyard.types import ChatRequest, Completion, Usage

BODY = {"model": "cheap", "messages": [{"role": "user", "content": "hi"}]}


def shed_total() -> float:
    return REGISTRY.get_sample_value("modelyard_requests_shed_total") or 0.0


async def test_third_concurrent_request_is_shed_and_never_reaches_the_upstream(
    engine: Engine, providers: dict[str, FunctionProvider], ledger: InMemoryLedger
) -> None:
    upstream_calls: list[str] = []
    two_inside = anyio.Event()
    release = anyio.Event()

    async def slow(req: ChatRequest, upstream: str) -> Completion:
        upstream_calls.append(upstream)
        if len(upstream_calls) == 2:
            two_inside.set()
        await release.wait()
        return Completion(
            id="c", model=upstream, content="ok", usage=Usage(input_tokens=5, output_tokens=1)
        )

    providers["cheapco"] = FunctionProvider(slow)
    app = create_app(engine, front=FrontSettings(max_in_flight=2, retry_after_s=3))
    transport = httpx.ASGITransport(app=app)
    before = shed_total()
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

        async def call() -> None:
            answers.append(await client.post("/v1/chat/completions", json=BODY))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                tg.start_soon(call)
                await two_inside.wait()
                shed = await client.post("/v1/chat/completions", json=BODY)
                # Health is never shed: an overloaded gateway can still be observed.
                health = await client.get("/health")
                release.set()
            after = await client.post("/v1/chat/completions", json=BODY)

    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "3"
    error: dict[str, Any] = shed.json()["error"]
    assert error["type"] == "service_unavailable"
    assert error["code"] == "overloaded"
    assert "2 requests in flight" in error["message"]
    assert health.status_code == 200
    assert [a.status_code for a in answers] == [200, 200]
    assert after.status_code == 200  # the slots free up once the two finish
    assert len(upstream_calls) == 3  # the two held ones and the one after; not the shed one
    assert shed_total() == before + 1
    records = await ledger.records()
    assert len(records) == 3
    assert all(r.status == "ok" for r in records)


async def test_zero_turns_shedding_off(
    engine: Engine, providers: dict[str, FunctionProvider]
) -> None:
    inside = 0
    peak = 0
    release = anyio.Event()

    async def slow(req: ChatRequest, upstream: str) -> Completion:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        if peak == 4:
            release.set()
        await release.wait()
        inside -= 1
        return Completion(id="c", model=upstream, content="ok")

    providers["cheapco"] = FunctionProvider(slow)
    app = create_app(engine, front=FrontSettings(max_in_flight=0))
    transport = httpx.ASGITransport(app=app)
    codes: list[int] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

        async def call() -> None:
            codes.append((await client.post("/v1/chat/completions", json=BODY)).status_code)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(call)
    assert codes == [200] * 4
    assert peak == 4
