"""A real gateway (uvicorn, SQLite ledger) in front of the fake upstream, with one
extra policy in its config: the cascade and council end-to-end suites share it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import yaml

from modelyard.app_factory import load_stack
from modelyard.ledger import CallRecord, open_ledger
from modelyard.testing.upstream import FakeUpstream, create_fake_upstream
from tests.e2e.conftest import ANTHROPIC_KEY, OPENAI_KEY, LiveServer, stack_config


class Gateway:
    """The running gateway: its URL, the fake upstream's state, and its ledger."""

    def __init__(self, upstream: FakeUpstream, url: str, ledger_path: Path) -> None:
        self.upstream, self.url, self.ledger_path = upstream, url, ledger_path

    def records(self, request_id: str) -> list[CallRecord]:
        async def read() -> list[CallRecord]:
            ledger = open_ledger(f"sqlite:///{self.ledger_path}")
            await ledger.open()
            try:
                return list(await ledger.records(request_id=request_id))
            finally:
                await ledger.close()

        return asyncio.run(read())

    @contextmanager
    def client(self) -> Iterator[openai.OpenAI]:
        with openai.OpenAI(
            base_url=f"{self.url}/v1", api_key="anything", max_retries=0, timeout=20
        ) as sdk:
            yield sdk


@contextmanager
def gateway_with_policy(tmp: Path, name: str, policy: dict[str, Any]) -> Iterator[Gateway]:
    """Start the fake upstream and a gateway whose config adds `policy` as `name`."""
    state = FakeUpstream(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY)
    upstream = LiveServer(create_fake_upstream(state), f"{name}-upstream")
    upstream.start()
    server: LiveServer | None = None
    try:
        config = stack_config(upstream.url)
        config["policies"][name] = policy
        path = tmp / "stack.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {"E2E_OPENAI_KEY": OPENAI_KEY, "E2E_ANTHROPIC_KEY": ANTHROPIC_KEY}
        stack = load_stack(str(path), (), env)
        ledger_path = tmp / "ledger.db"
        server = LiveServer(stack.create_app(open_ledger(f"sqlite:///{ledger_path}")), "gateway")
        server.start()
        yield Gateway(state, server.url, ledger_path)
    finally:
        if server is not None:
            server.stop()
        upstream.stop()
