"""An Engine over the test stack with the response cache on, its providers counting
calls, a fake monotonic clock for TTLs, and the machine's Redis for the shared backend."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest

from modelyard.cache import MemoryBackend, ResponseCache
from modelyard.config import CacheConfig
from modelyard.engine import Engine, build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.types import ChatRequest, Message
from tests.budgets.conftest import redis_client, redis_prefix, redis_url  # noqa: F401
from tests.stack import ENV, stack_config

_IDS = itertools.count(1)
CACHE_ON: dict[str, Any] = {"enabled": True, "ttl_s": 60, "max_entries": 100}


class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_engine(
    ledger: InMemoryLedger,
    providers: dict[str, FunctionProvider],
    *,
    cache: dict[str, Any] | None = None,
    monotonic: Callable[[], float] | None = None,
    **overrides: Any,
) -> Engine:
    config = stack_config(cache={**CACHE_ON, **(cache or {})}, **overrides)
    return build_engine(
        config,
        env=ENV,
        ledger=ledger,
        providers=providers,
        rng=random.Random(7),
        # Shared by every engine of a test: several may write one ledger.
        ids=lambda: f"id{next(_IDS)}",
        source="test-stack.yaml",
        **({"monotonic": monotonic} if monotonic else {}),
    )


def ask(text: str = "hello", **fields: Any) -> ChatRequest:
    """A deterministic (temperature 0) request: cacheable by default."""
    fields.setdefault("temperature", 0)
    return ChatRequest(messages=[Message(role="user", content=text)], **fields)


def shared_memory_cache(settings: dict[str, Any] | None = None) -> ResponseCache:
    config = CacheConfig(**{**CACHE_ON, **(settings or {})})
    return ResponseCache(MemoryBackend(ttl_s=config.ttl_s, max_entries=config.max_entries), config)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def engine(
    ledger: InMemoryLedger, providers: dict[str, FunctionProvider], clock: FakeTime
) -> Engine:
    return make_engine(ledger, providers, monotonic=clock)


def calls(providers: dict[str, FunctionProvider]) -> int:
    return sum(len(p.calls) for p in providers.values())


def status(outcome: Any) -> str | None:
    """What the cache did for an `Outcome` or `LiveStream` (None: cache off)."""
    note = outcome.cache
    return None if note is None else str(note.status)
