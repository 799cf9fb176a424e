"""Shared fixtures: a small stack config with local deployments and function providers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from modelyard.config import Config, parse
from modelyard.engine import Engine, build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from modelyard.types import ChatRequest, Completion, Usage

STACK: dict[str, Any] = {
    "deployments": {
        "cheapco": {
            "adapter": "openai",
            "base_url": "https://cheap.example/v1",
            "api_key_env": "CHEAP_KEY",
        },
        "bigco": {
            "adapter": "anthropic",
            "base_url": "https://big.example",
            "api_key_env": "BIG_KEY",
        },
        "onprem": {"adapter": "openai", "base_url": "http://127.0.0.1:9/v1", "private": True},
    },
    "models": {
        "small": {
            "deployment": "cheapco",
            "capabilities": ["text", "streaming", "json_mode"],
            "context_window": 16000,
            "max_output_tokens": 4000,
            "prices": {"input": "0.10", "output": "0.40"},
            "quality": {"default": 0.6, "tasks": {"classification": 0.9}},
        },
        "vision-mid": {
            "deployment": "cheapco",
            "capabilities": ["text", "vision", "tools", "json_schema", "streaming"],
            "context_window": 128000,
            "max_output_tokens": 16000,
            "prices": {"input": "1.00", "output": "4.00", "cached_input": "0.25"},
            "quality": {"default": 0.8},
        },
        "frontier": {
            "deployment": "bigco",
            "family": "anthropic",
            "capabilities": ["text", "vision", "tools", "json_schema", "streaming", "long_context"],
            "context_window": 200000,
            "max_output_tokens": 32000,
            "prices": {"input": "5", "output": "25", "cached_input": "0.5"},
            "quality": {"default": 0.95},
        },
        "local-llm": {
            "deployment": "onprem",
            "capabilities": ["text", "streaming"],
            "context_window": 8000,
            "max_output_tokens": 2000,
            "quality": {"default": 0.5},
        },
    },
    "aliases": {"cheap": "small", "best-model": "frontier"},
    "policies": {
        "auto": {"type": "utility"},
        "cheapest": {"type": "cheapest"},
        "best": {"type": "best"},
        "pinned": {"type": "fixed", "model": "cheap"},
    },
    "default_policy": "auto",
}
ENV = {"CHEAP_KEY": "sk-test-cheap-000000000000", "BIG_KEY": "sk-test-big-000000000000"}


def stack_config(**overrides: Any) -> Config:
    data = {**STACK, **overrides}
    return parse(data, "test-stack.yaml")


def echo_completion(text: str = "ok", usage: Usage | None = None) -> Callable[..., Any]:
    async def complete(request: ChatRequest, upstream: str) -> Completion:
        return Completion(
            id="cmpl-1",
            model=upstream,
            content=f"{text} from {upstream}",
            usage=usage or Usage(input_tokens=100, output_tokens=20),
        )

    return complete


@pytest.fixture
def providers() -> dict[str, FunctionProvider]:
    return {name: FunctionProvider(echo_completion()) for name in ("cheapco", "bigco", "onprem")}


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger()


@pytest.fixture
def engine(providers: dict[str, FunctionProvider], ledger: InMemoryLedger) -> Engine:
    import random

    counter = iter(range(1, 1_000_000))
    return build_engine(
        stack_config(),
        env=ENV,
        ledger=ledger,
        providers=providers,
        rng=random.Random(7),
        ids=lambda: f"id{next(counter)}",
        source="test-stack.yaml",
    )


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c
