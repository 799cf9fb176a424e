"""The real gateway app (real adapters) in front of the fake upstream, in process.

Every request the fake receives is a provider call; the ledger must hold exactly one
record per call whatever the client sent.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from modelyard.config import parse
from modelyard.engine import build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.server.app import FrontSettings, create_app
from modelyard.testing.upstream import FakeUpstream, create_fake_upstream

OPENAI_KEY = "sk-fuzz-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-fuzz-anthropic-0123456789"
ERROR_KEYS = {"message", "type", "param", "code"}


def _card(deployment: str, upstream: str, **extra: Any) -> dict[str, Any]:
    return {
        "deployment": deployment,
        "upstream": upstream,
        "capabilities": ["text", "tools", "json_schema", "json_mode", "streaming", "vision"],
        "context_window": 128000,
        "max_output_tokens": 16000,
        "prices": {"input": "0.15", "output": "0.60"},
        "quality": {"default": 0.7},
        **extra,
    }


CONFIG: dict[str, Any] = {
    "deployments": {
        "fake-openai": {
            "adapter": "openai",
            "base_url": "http://upstream/v1",
            "api_key_env": "FUZZ_OPENAI_KEY",
        },
        "fake-anthropic": {
            "adapter": "anthropic",
            "base_url": "http://upstream",
            "api_key_env": "FUZZ_ANTHROPIC_KEY",
        },
    },
    "models": {
        "gpt": _card("fake-openai", "gpt-test"),
        "claude": _card("fake-anthropic", "claude-test", family="anthropic"),
    },
    "policies": {"auto": {"type": "cheapest"}, "best": {"type": "best"}},
    "default_policy": "auto",
}
ENV = {"FUZZ_OPENAI_KEY": OPENAI_KEY, "FUZZ_ANTHROPIC_KEY": ANTHROPIC_KEY}


@dataclass
class Gateway:
    """The app under test and what to check it against."""

    app: FastAPI
    upstream: FakeUpstream
    ledger: InMemoryLedger

    def calls(self) -> int:
        return len(self.upstream.requests)

    def records(self) -> list[Any]:
        # Called from the test's thread, outside any running loop.
        return list(asyncio.run(self.ledger.records(limit=10**9)))


def build_gateway() -> Gateway:
    upstream = FakeUpstream(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)
    transport = httpx.ASGITransport(app=create_fake_upstream(upstream))
    client = httpx.AsyncClient(transport=transport)
    ledger = InMemoryLedger()
    asyncio.run(ledger.open())
    engine = build_engine(
        parse(CONFIG, "fuzz.yaml"), env=ENV, ledger=ledger, client=client, rng=random.Random(0)
    )
    # The schema fuzz reads /openapi.json, which is off unless enabled (issue 12).
    return Gateway(create_app(engine, front=FrontSettings(docs=True)), upstream, ledger)


def check_response(
    gateway: Gateway, status: int, body: bytes, content_type: str, path: str = ""
) -> None:
    """Zero 5xx; every error OpenAI-shaped (Anthropic-shaped on `/v1/messages*`); one
    settled record per upstream call."""
    assert status < 500, body[:500]
    if status >= 400:
        assert content_type.startswith("application/json"), (status, body[:200])
        payload = json.loads(body)
        error = payload["error"]
        if path.startswith("/v1/messages"):
            assert payload["type"] == "error", payload
            assert set(error) == {"type", "message"}, error
        else:
            assert set(error) == ERROR_KEYS, error
        assert isinstance(error["message"], str)
    records = gateway.records()
    assert len(records) == gateway.calls()
    assert not [r for r in records if r.status == "started"]
