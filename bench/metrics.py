"""`/metrics` scrape time after a realistic load, and what the metrics tap costs per
attempt. Prints figures; asserts nothing about speed.

A synthetic stack of 30 models on 6 deployments; `--records` billed attempts
(statuses mixed as a busy gateway sees them: 90% ok, 6% error, 3% cancelled, 1%
escalated; 40% streamed) spread over `--keys` keys in `--teams` teams, each key in
one team, fed through the real tap (`PrometheusTelemetry.attempt_billed`) and one
request end per attempt; then `/metrics` is scraped through the real app (access
check, gauge sampling of 6 breakers, exposition) `--scrapes` times.

    python bench/metrics.py                       # 30 models, 200 keys, 20 teams, 20,000 records
    python bench/metrics.py --keys 1000 --teams 200   # past the label bound (100 each)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from modelyard.config import parse
from modelyard.engine import build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.ledger.records import CallRecord
from modelyard.observability.hooks import RequestEnd
from modelyard.observability.prometheus_tap import PrometheusTelemetry
from modelyard.providers.function import FunctionProvider
from modelyard.server.app import create_app
from modelyard.types import ChatRequest, Completion

DEPLOYMENTS = 6
MODELS = 30
STATUSES = ["ok"] * 90 + ["error"] * 6 + ["cancelled"] * 3 + ["escalated"]


def stack() -> dict[str, Any]:
    deployments = {
        f"dep{d}": {"adapter": "openai", "base_url": f"https://d{d}.example/v1"}
        for d in range(DEPLOYMENTS)
    }
    models = {
        f"vendor/model-{m:02d}": {
            "deployment": f"dep{m % DEPLOYMENTS}",
            "context_window": 128000,
            "max_output_tokens": 8000,
            "prices": {"input": "1", "output": "4"},
        }
        for m in range(MODELS)
    }
    return {
        "deployments": deployments,
        "models": models,
        "policies": {"auto": {"type": "cheapest"}},
    }


def records(n: int, keys: int, teams: int, rng: random.Random) -> list[CallRecord]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        m = rng.randrange(MODELS)
        k = rng.randrange(keys)
        streamed = rng.random() < 0.4
        out.append(
            CallRecord(
                id=f"r{i}",
                request_id=f"q{i}",
                decision_id=f"d{i}",
                policy="auto",
                model_id=f"vendor/model-{m:02d}",
                deployment=f"dep{m % DEPLOYMENTS}",
                upstream_model=f"model-{m:02d}",
                attempt=1,
                started_at=now,
                latency_ms=rng.lognormvariate(6.5, 0.8),
                status=rng.choice(STATUSES),  # type: ignore[arg-type]
                input_tokens=rng.randrange(50, 4000),
                output_tokens=rng.randrange(1, 800),
                cost_usd=Decimal(rng.randrange(1, 10_000)) / Decimal(1_000_000),
                ttft_ms=rng.lognormvariate(5.5, 0.6) if streamed else None,
                key_id=f"key{k:04d}",
                team=f"team{k % teams:03d}",
            )
        )
    return out


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)

    async def never(request: ChatRequest, upstream: str) -> Completion:
        raise AssertionError("no provider call in this bench")

    config = parse(stack(), "bench-metrics.yaml")
    providers = {f"dep{d}": FunctionProvider(never) for d in range(DEPLOYMENTS)}
    ledger = InMemoryLedger()
    engine = build_engine(config, env={}, ledger=ledger, providers=providers)
    app = create_app(engine)
    tap = engine.telemetry
    assert isinstance(tap, PrometheusTelemetry)
    batch = records(args.records, args.keys, args.teams, rng)

    # CPU time, not wall: on a shared machine wall time measures the neighbours.
    t0 = time.process_time()
    for record in batch:
        tap.attempt_billed(record)
        tap.request_ended(record.request_id, RequestEnd(200, None, record.model_id))
    fed = time.process_time() - t0
    t0 = time.process_time()
    for record in batch:  # again, every label set now cached: the steady state
        tap.attempt_billed(record)
        tap.request_ended(record.request_id, RequestEnd(200, None, record.model_id))
    warm = time.process_time() - t0

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        first = await client.get("/metrics")
        times = []
        cpu0 = time.process_time()
        for _ in range(args.scrapes):
            t = time.perf_counter()
            response = await client.get("/metrics")
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200
        cpu = (time.process_time() - cpu0) / args.scrapes * 1000
    body = first.text
    series = sum(1 for line in body.splitlines() if line.startswith("modelyard_"))
    times.sort()
    print(f"models {MODELS}, deployments {DEPLOYMENTS}, keys {args.keys}, teams {args.teams}")
    print(f"records fed: {args.records:,} twice (attempt tap + request end)")
    print(
        f"tap CPU per attempt + request end: first pass {fed / args.records * 1e6:.1f} us "
        f"(label children created), steady state {warm / args.records * 1e6:.1f} us"
    )
    print(f"/metrics: {series:,} modelyard series, {len(body.encode()) / 1024:.0f} KiB")
    print(
        f"scrape over ASGI ({args.scrapes} scrapes): median {statistics.median(times):.1f} ms, "
        f"p90 {times[int(0.9 * (len(times) - 1))]:.1f} ms, max {times[-1]:.1f} ms wall; "
        f"{cpu:.1f} ms CPU per scrape"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
