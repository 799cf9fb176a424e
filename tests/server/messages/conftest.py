"""The gateway over an OpenAI-format and an Anthropic-format deployment, both served
by the fake upstream (`modelyard.testing.upstream`) in-process through
`httpx.ASGITransport`, and the official `anthropic` SDK pointed at the gateway.

The real wire adapters run: what the fake receives is what a real upstream would.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from modelyard.config import parse
from modelyard.engine import Engine, build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.server.app import FrontSettings, create_app
from modelyard.testing.upstream import FakeUpstream, create_fake_upstream

OPENAI_KEY = "sk-msg-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-msg-anthropic-0123456789abcdef"
GPT = "acme/gpt"
CLAUDE = "acme/claude"
PRICES = {
    GPT: {"input": Decimal("0.15"), "output": Decimal("0.60")},
    CLAUDE: {"input": Decimal("3"), "output": Decimal("15")},
}
CAPABILITIES = ["text", "vision", "tools", "json_schema", "json_mode", "streaming"]


def _card(model: str, deployment: str, upstream: str, quality: float) -> dict[str, Any]:
    return {
        "deployment": deployment,
        "upstream": upstream,
        "capabilities": CAPABILITIES,
        "context_window": 128000,
        "max_output_tokens": 16000,
        "prices": {k: str(v) for k, v in PRICES[model].items()},
        "quality": {"default": quality},
    }


STACK: dict[str, Any] = {
    "deployments": {
        "fake-openai": {
            "adapter": "openai",
            "base_url": "http://upstream.test/v1",
            "api_key_env": "MSG_OPENAI_KEY",
        },
        "fake-anthropic": {
            "adapter": "anthropic",
            "base_url": "http://upstream.test",
            "api_key_env": "MSG_ANTHROPIC_KEY",
        },
    },
    "models": {
        GPT: _card(GPT, "fake-openai", "gpt-test", 0.7),
        CLAUDE: {**_card(CLAUDE, "fake-anthropic", "claude-test", 0.9), "family": "anthropic"},
    },
    "aliases": {"gpt": GPT, "claude": CLAUDE},
    "policies": {
        "auto": {"type": "cheapest"},
        "best": {"type": "best"},
        "claude-first": {"type": "fixed", "model": "claude", "fallback": [GPT]},
    },
    "default_policy": "auto",
}
ENV = {"MSG_OPENAI_KEY": OPENAI_KEY, "MSG_ANTHROPIC_KEY": ANTHROPIC_KEY}


@dataclass
class Gateway:
    """Handles for a test: the engine, its ledger, the fake upstream and clients."""

    engine: Engine
    ledger: InMemoryLedger
    upstream: FakeUpstream
    http: httpx2.AsyncClient
    sdk: anthropic.AsyncAnthropic

    def last_body(self, path: str) -> Any:
        return self.upstream.requests_to(path)[-1].body


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    upstream = FakeUpstream(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)
    upstream_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(create_fake_upstream(upstream))
    )
    ledger = InMemoryLedger()
    await ledger.open()
    counter = iter(range(1, 1_000_000))
    engine = build_engine(
        parse(STACK, "messages-test.yaml"),
        env=ENV,
        ledger=ledger,
        client=upstream_client,
        rng=random.Random(7),
        ids=lambda: f"id{next(counter)}",
        source="messages-test.yaml",
    )
    app = create_app(engine, front=FrontSettings(max_body_bytes=256 * 1024))
    # The SDKs are built on httpx2 and insist on its client objects.
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1")
    sdk = anthropic.AsyncAnthropic(
        api_key="anything", base_url="http://127.0.0.1", http_client=http, max_retries=0
    )
    try:
        yield Gateway(engine, ledger, upstream, http, sdk)
    finally:
        await http.aclose()
        await upstream_client.aclose()
        await ledger.close()
