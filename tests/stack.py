"""A small test stack: three deployments, four models, aliases and policies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelyard.config import Config, parse
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
            "latency": {"ttft_ms": 200, "output_tokens_per_s": 200},
        },
        "vision-mid": {
            "deployment": "cheapco",
            "capabilities": ["text", "vision", "tools", "json_schema", "streaming"],
            "context_window": 128000,
            "max_output_tokens": 16000,
            "prices": {"input": "1.00", "output": "4.00", "cached_input": "0.25"},
            "quality": {"default": 0.8},
            "latency": {"ttft_ms": 500, "output_tokens_per_s": 100},
        },
        "frontier": {
            "deployment": "bigco",
            "family": "anthropic",
            "capabilities": ["text", "vision", "tools", "json_schema", "streaming", "long_context"],
            "context_window": 200000,
            "max_output_tokens": 32000,
            "prices": {"input": "5", "output": "25", "cached_input": "0.5"},
            "quality": {"default": 0.95},
            "latency": {"ttft_ms": 1500, "output_tokens_per_s": 50},
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
