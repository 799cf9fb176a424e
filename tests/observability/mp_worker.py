"""One gateway worker for the multiprocess test: `python -m tests.observability.mp_worker
MODEL N FAIL` serves N requests for MODEL (its deployment failing when FAIL is 1),
prints `ready`, then answers each `scrape` line on stdin with its own `/metrics`
body (ending in a line `END`), until stdin closes. PROMETHEUS_MULTIPROC_DIR comes
from the environment, as `modelyard serve --workers N` sets it."""

from __future__ import annotations

import asyncio
import random
import sys

import httpx

from modelyard.engine import build_engine
from modelyard.errors import ProviderServerError
from modelyard.ledger import InMemoryLedger
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from modelyard.types import ChatRequest, Completion
from tests.stack import ENV, echo_completion, stack_config

# Longer than the workers' breaker sampling interval (2 s).
SAMPLED_AFTER_S = 2.3


async def broken(request: ChatRequest, upstream: str) -> Completion:
    raise ProviderServerError(f"{upstream}: 500", provider="cheapco")


async def main(model: str, n: int, fail: bool) -> None:
    ledger = InMemoryLedger()
    await ledger.open()
    providers = {d: FunctionProvider(echo_completion()) for d in ("cheapco", "bigco", "onprem")}
    if fail:
        providers["cheapco"] = FunctionProvider(broken)
    engine = build_engine(
        stack_config(), env=ENV, ledger=ledger, providers=providers, rng=random.Random(1)
    )
    app = create_app(engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            for _ in range(n):
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                await c.post("/v1/chat/completions", json=body)
            await asyncio.sleep(SAMPLED_AFTER_S)
            print("ready", flush=True)
            loop = asyncio.get_running_loop()
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                if line.strip() == "scrape":
                    print((await c.get("/metrics")).text, "END", sep="\n", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"))
