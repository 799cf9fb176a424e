"""The embeddings endpoint end to end, in process: the official openai SDK talks to
the gateway app (ASGI), whose OpenAI-compatible deployments talk to two fake
upstreams (ASGI), and whose local model is an in-process encoder (the hashing
encoder here: MiniLM itself is exercised in tests/embeddings)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import openai
import pytest

from modelyard.config import parse
from modelyard.engine import Engine, build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.server.app import create_app
from modelyard.testing.upstream import FakeUpstream, create_fake_upstream

KEY = "sk-embed-test-0123456789abcdef"
BACKUP_KEY = "sk-embed-backup-0123456789abcdef"
ENV = {"EMB_KEY": KEY, "BACKUP_KEY": BACKUP_KEY}
SMALL = "acme/embed-small"
BACKUP = "backup/embed-small"
ADA = "acme/ada"
LOCAL = "local/hash"
GPT = "acme/gpt"
# $ per million input tokens, as in the config below.
PRICE = {SMALL: "0.02", BACKUP: "0.03", ADA: "0.10"}


def _emb(deployment: str, upstream: str, price: str, quality: float, **spec: Any) -> Any:
    return {
        "deployment": deployment,
        "upstream": upstream,
        "embeddings": {"dimensions": 1536, **spec},
        "context_window": 8191,
        "prices": {"input": price, "output": "0"},
        "quality": {"default": quality},
    }


STACK: dict[str, Any] = {
    "deployments": {
        "fake": {"adapter": "openai", "base_url": "http://fake/v1", "api_key_env": "EMB_KEY"},
        "backup": {
            "adapter": "openai",
            "base_url": "http://spare.test/v1",
            "api_key_env": "BACKUP_KEY",
        },
        "here": {"adapter": "local-encoder", "base_url": "local://in-process", "private": True},
    },
    "models": {
        SMALL: _emb(
            "fake", "text-embedding-3-small", PRICE[SMALL], 0.62, shortenable=True, token_input=True
        ),
        BACKUP: _emb(
            "backup",
            "text-embedding-3-small",
            PRICE[BACKUP],
            0.61,
            shortenable=True,
            token_input=True,
        ),
        ADA: _emb("fake", "text-embedding-ada-002", PRICE[ADA], 0.5, token_input=True),
        LOCAL: {
            "deployment": "here",
            "upstream": "hashing-384",
            "embeddings": {"dimensions": 384},
            "context_window": 256,
            "prices": {"input": "0", "output": "0"},
            "quality": {"default": 0.4},
        },
        GPT: {
            "deployment": "fake",
            "upstream": "gpt-test",
            "capabilities": ["text", "streaming"],
            "context_window": 128000,
            "max_output_tokens": 4000,
            "prices": {"input": "0.15", "output": "0.60"},
        },
    },
    "policies": {
        "auto": {"type": "cheapest"},
        "best": {"type": "best"},
        "pinned": {"type": "fixed", "model": SMALL, "fallback": [BACKUP]},
        "council": {"type": "council", "members": [SMALL, BACKUP]},
    },
    "default_policy": "auto",
}


@dataclass
class Gateway:
    engine: Engine
    ledger: InMemoryLedger
    fake: FakeUpstream
    backup: FakeUpstream
    client: openai.AsyncOpenAI
    http: httpx2.AsyncClient


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    fake, backup = FakeUpstream(openai_key=KEY), FakeUpstream(openai_key=BACKUP_KEY)
    upstreams = httpx.AsyncClient(
        mounts={
            "http://fake": httpx.ASGITransport(app=create_fake_upstream(fake)),
            "http://spare.test": httpx.ASGITransport(app=create_fake_upstream(backup)),
        }
    )
    ledger = InMemoryLedger()
    await ledger.open()
    counter = iter(range(1, 1_000_000))
    engine = build_engine(
        parse(STACK, "embed-stack.yaml"),
        env=ENV,
        ledger=ledger,
        client=upstreams,
        rng=random.Random(3),
        ids=lambda: f"id{next(counter)}",
    )
    transport = httpx2.ASGITransport(app=create_app(engine))
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
        client = openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key="unused", http_client=http, max_retries=0
        )
        yield Gateway(engine, ledger, fake, backup, client, http)
    await upstreams.aclose()
    await ledger.close()
