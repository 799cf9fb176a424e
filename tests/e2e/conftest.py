"""Real sockets: the fake upstream and the gateway, each in its own uvicorn server.

The gateway is built exactly as `modelyard serve` builds it (`load_stack` from a
YAML file, `Stack.create_app` with a SQLite ledger), with both deployments
pointing at the fake upstream over loopback.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from modelyard.app_factory import load_stack
from modelyard.ledger import open_ledger
from modelyard.testing.upstream import FakeUpstream, create_fake_upstream
from modelyard.testing.wire import request_problem

OPENAI_KEY = "sk-e2e-openai-0123456789abcdefXYZ"
ANTHROPIC_KEY = "sk-ant-e2e-anthropic-0123456789abcdefXYZ"
GPT = "acme/gpt-test"
CLAUDE = "acme/claude-test"
# $ per million tokens, as written in the config below.
PRICES = {
    GPT: {"input": Decimal("0.15"), "output": Decimal("0.60"), "cached_input": Decimal("0.075")},
    CLAUDE: {"input": Decimal("3"), "output": Decimal("15"), "cached_input": Decimal("0.30")},
}


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any, name: str) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=name, daemon=True
        )

    def start(self, health_path: str = "/health", timeout_s: float = 20.0) -> None:
        """Start serving and return once `health_path` answers 200."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError(f"{self._thread.name} exited during start-up")
            try:
                if httpx.get(self.url + health_path, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self._thread.name} not ready after {timeout_s}s")

    def stop(self) -> None:
        """Ask uvicorn to exit (running the app's shutdown) and wait for the thread."""
        self._server.should_exit = True
        if self._thread.ident is not None:
            self._thread.join(timeout=15)
        self._sock.close()
        assert not self._thread.is_alive(), f"{self._thread.name} did not shut down"


def _card(model: str, deployment: str, upstream: str, quality: float) -> dict[str, Any]:
    return {
        "deployment": deployment,
        "upstream": upstream,
        "capabilities": ["text", "tools", "json_schema", "json_mode", "streaming"],
        "context_window": 128000,
        "max_output_tokens": 16000,
        "prices": {k: str(v) for k, v in PRICES[model].items()},
        "quality": {"default": quality},
    }


def stack_config(upstream_url: str) -> dict[str, Any]:
    """An OpenAI-format and an Anthropic-format deployment, both on the fake upstream,
    one model on each, aliases and three policies."""
    return {
        "deployments": {
            "fake-openai": {
                "adapter": "openai",
                "base_url": f"{upstream_url}/v1",
                "api_key_env": "E2E_OPENAI_KEY",
                "timeout_s": 10,
            },
            "fake-anthropic": {
                "adapter": "anthropic",
                "base_url": upstream_url,
                "api_key_env": "E2E_ANTHROPIC_KEY",
                "timeout_s": 10,
            },
        },
        "models": {
            GPT: _card(GPT, "fake-openai", "gpt-test", 0.7),
            CLAUDE: {**_card(CLAUDE, "fake-anthropic", "claude-test", 0.9), "family": "anthropic"},
        },
        "aliases": {"claude": CLAUDE, "gpt": GPT},
        "policies": {
            "auto": {"type": "cheapest"},
            "best": {"type": "best"},
            "claude-first": {"type": "fixed", "model": "claude", "fallback": [GPT]},
        },
        "default_policy": "auto",
        # One gateway serves the whole session: keep one test's scripted failures
        # from opening a breaker that a later test would trip over.
        "resilience": {"breaker": {"failure_threshold": 1000}},
    }


@dataclass
class E2E:
    """Handles on the running pair, for the tests."""

    upstream: FakeUpstream
    gateway_url: str
    ledger_path: Path
    decision_ids: list[str]


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    """The fake upstream and the real gateway, each on its own port, for the session."""
    tmp = tmp_path_factory.mktemp("e2e")
    state = FakeUpstream(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)
    # Warm the request validators now, not inside the first timed request.
    request_problem("openai", {})
    request_problem("anthropic", {})
    upstream = LiveServer(create_fake_upstream(state), "fake-upstream")
    upstream.start()
    config_path = tmp / "stack.yaml"
    config_path.write_text(yaml.safe_dump(stack_config(upstream.url)), encoding="utf-8")
    env = {"E2E_OPENAI_KEY": OPENAI_KEY, "E2E_ANTHROPIC_KEY": ANTHROPIC_KEY}
    stack = load_stack(str(config_path), (), env)
    ledger_path = tmp / "ledger.db"
    gateway = LiveServer(stack.create_app(open_ledger(f"sqlite:///{ledger_path}")), "gateway")
    try:
        gateway.start()
        yield E2E(state, gateway.url, ledger_path, [])
    finally:
        gateway.stop()
        upstream.stop()
