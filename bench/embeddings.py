"""Gateway overhead of POST /v1/embeddings: the time modelyard adds on top of the
upstream (routing, the written-ahead ledger record, parsing, checking and rendering
the vectors), per request, for a small and a large batch, floats and base64.

In process, no sockets: the gateway app and a fake OpenAI upstream each behind
httpx's ASGI transport; the upstream alone is timed the same way, and the overhead is
the difference of the medians. The local MiniLM model's own speed is bench/encoder.py.

    python bench/embeddings.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

import httpx

from modelyard.config import parse
from modelyard.engine import build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.server.app import create_app
from modelyard.testing.upstream import FakeUpstream, create_fake_upstream

STACK: dict[str, Any] = {
    "deployments": {"fake": {"adapter": "openai", "base_url": "http://fake/v1"}},
    "models": {
        "emb": {
            "deployment": "fake",
            "upstream": "text-embedding-3-small",
            "embeddings": {"dimensions": 1536, "shortenable": True},
            "context_window": 8191,
            "prices": {"input": "0.02", "output": "0"},
        }
    },
    "policies": {"auto": {"type": "cheapest"}},
}


async def timed(client: httpx.AsyncClient, url: str, body: dict[str, Any], rounds: int) -> float:
    """Median milliseconds per request after two warm-ups."""
    times = []
    for i in range(rounds + 2):
        start = time.perf_counter()
        response = await client.post(url, json=body)
        response.raise_for_status()
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main(rounds: int) -> None:
    upstream_app = create_fake_upstream(FakeUpstream())
    upstream = httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream_app))
    engine = build_engine(
        parse(STACK, "bench"),
        env={},
        ledger=InMemoryLedger(),
        client=upstream,
        rng=random.Random(1),
    )
    await engine.ledger.open()
    gateway = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)))
    print(f"{'inputs':>6} {'format':>7} {'upstream ms':>12} {'gateway ms':>11} {'overhead ms':>12}")
    for inputs in (1, 100):
        texts = [f"sentence number {i} about nothing in particular" for i in range(inputs)]
        for fmt in ("float", "base64"):
            body = {"input": texts, "encoding_format": fmt}
            direct = await timed(
                upstream,
                "http://fake/v1/embeddings",
                {**body, "model": "text-embedding-3-small"},
                rounds,
            )
            through = await timed(
                gateway, "http://gw/v1/embeddings", {**body, "model": "emb"}, rounds
            )
            print(
                f"{inputs:>6} {fmt:>7} {direct:>12.2f} {through:>11.2f} {through - direct:>12.2f}"
            )
    await engine.ledger.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args().rounds))
