"""The response cache on a replayed workload with repeats: hit rate, cost with and
without the cache, and what a hit costs in latency next to a miss.

    python bench/cache.py                                # 2,000 requests, Zipf s=1.0
    python bench/cache.py --requests 5000 --zipf 0.6,1.0,1.4
    python bench/cache.py --backend redis                # MODELYARD_REDIS_URL or local Redis
    python bench/cache.py --ledger memory                # no SQLite commit per request

The workload: AlpacaEval's routing prompts (`../shared/data/alpacaeval-routing`, 468
instructions with every model's recorded answer and cost). Each request draws a prompt
from a Zipf distribution over a seeded random ranking of the prompts (the r-th most
popular prompt is asked with probability ∝ 1/r^s), so a few prompts repeat often and
most rarely, as in real traffic. Every request is sent through the server's own Engine
(`ReplayHarness`, a `ReplayProvider` answering with the recorded response and cost) at
temperature 0, once with the cache off and once on, and the costs are read back from
the ledger: what the gateway would have billed. Latency is wall-clock time of
`Engine.complete` per request, ledger write included (SQLite in a temp dir by
default), after 50 unmeasured warm-up requests. The replayed provider answers
instantly, so a miss here is the gateway's own overhead: a real miss adds the
provider's seconds on top.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from modelyard.cache import ResponseCache, memory_cache, redis_cache
from modelyard.config import CacheConfig
from modelyard.evaluation.harness import ReplayHarness
from modelyard.learned.outcomes import OutcomeSet, load_outcomes
from modelyard.ledger import open_ledger

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "alpacaeval-routing"
console = Console(width=110)


@dataclass
class Run:
    """One pass over the workload: per request, its latency and the cache's verdict."""

    latencies_ms: list[float]
    statuses: list[str]
    cost_usd: Decimal
    upstream_calls: int


def zipf_workload(n_prompts: int, n_requests: int, s: float, seed: int) -> np.ndarray:
    """Prompt rows for `n_requests` requests: rank r (a seeded random order of the
    prompts) drawn with probability proportional to 1 / r^s."""
    rng = np.random.default_rng(seed)
    ranking = rng.permutation(n_prompts)
    weights = 1.0 / np.arange(1, n_prompts + 1) ** s
    draws = rng.choice(n_prompts, size=n_requests, p=weights / weights.sum())
    return ranking[draws]


async def build_cache(backend: str, prefix: str) -> tuple[ResponseCache, Any]:
    settings = CacheConfig(enabled=True, max_entries=100_000, ttl_s=3600)
    if backend == "memory":
        cache = memory_cache(settings, {}, time.monotonic)
        assert cache is not None
        return cache, None
    import redis.asyncio as aioredis

    url = os.environ.get("MODELYARD_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = aioredis.Redis.from_url(url)
    await client.ping()
    shared = redis_cache(settings.model_copy(update={"backend": "redis"}), client, prefix)
    assert shared is not None
    return shared, client


async def run_once(
    data: OutcomeSet, rows: np.ndarray, model: str, cache: ResponseCache | None, ledger_url: str
) -> Run:
    harness = ReplayHarness(data)
    ledger = open_ledger(ledger_url)
    # The harness's Engine, on a ledger that commits like a gateway's.
    harness.ledger = ledger  # type: ignore[assignment]
    harness.engine.ledger = ledger
    harness.engine.executor.ledger = ledger
    harness.engine.cache = cache
    await ledger.open()
    latencies, statuses = [], []
    try:
        for row in rows:
            request_id = harness.next_request_id(int(row), model)
            request = harness.request(int(row), model).model_copy(update={"temperature": 0})
            t0 = time.perf_counter()
            _, outcome = await harness.engine.complete(request, request_id=request_id)
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses.append(outcome.cache.status if outcome.cache else "off")
        records = await ledger.records(limit=2**62)
    finally:
        await ledger.close()
    cost = sum((r.cost_usd for r in records), Decimal(0))
    return Run(latencies, statuses, cost, harness.provider.calls)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def split(run: Run, status: str) -> list[float]:
    return [ms for ms, s in zip(run.latencies_ms, run.statuses, strict=True) if s == status]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--zipf", default="0.6,1.0,1.4", help="Zipf exponents, comma list")
    parser.add_argument("--model", default="gpt4_1106_preview", help="the model answering")
    parser.add_argument("--backend", choices=["memory", "redis"], default="memory")
    parser.add_argument("--ledger", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_outcomes(DATA)
    exponents = [float(s) for s in args.zipf.split(",")]
    console.print(
        f"{os.cpu_count()} CPUs, python {platform.python_version()}; {args.requests} requests "
        f"over {len(data.prompts)} AlpacaEval prompts, answered by {args.model}; "
        f"cache backend {args.backend}, ledger {args.ledger}"
    )
    costs = Table(title="cost on the replayed workload (ledger totals)")
    for col in ("zipf s", "unique prompts", "hit rate", "cost, no cache", "cost, cache", "saved"):
        costs.add_column(col, justify="right")
    latency = Table(title="Engine.complete latency per request, ms (ledger write included)")
    for col in ("zipf s", "kind", "n", "p50", "p99", "mean"):
        latency.add_column(col, justify="right")

    with tempfile.TemporaryDirectory() as tmp:
        # Unmeasured warm-up (tokenizer, SQLAlchemy statement compilation, imports).
        warm = zipf_workload(len(data.prompts), 50, 1.0, args.seed + 1)
        await run_once(data, warm, args.model, None, f"sqlite:///{tmp}/warm.db")
        for i, s in enumerate(exponents):
            rows = zipf_workload(len(data.prompts), args.requests, s, args.seed)
            url = "memory://" if args.ledger == "memory" else f"sqlite:///{tmp}/off-{i}.db"
            off = await run_once(data, rows, args.model, None, url)
            prefix = f"modelyard-bench-{secrets.token_hex(4)}:"
            cache, client = await build_cache(args.backend, prefix)
            url = "memory://" if args.ledger == "memory" else f"sqlite:///{tmp}/on-{i}.db"
            on = await run_once(data, rows, args.model, cache, url)
            if client is not None:
                keys = [k async for k in client.scan_iter(match=prefix + "*")]
                if keys:
                    await client.delete(*keys)
                await client.aclose()
            hits = on.statuses.count("hit")
            saved = off.cost_usd - on.cost_usd
            costs.add_row(
                f"{s:g}",
                str(len(set(rows.tolist()))),
                f"{hits / len(rows):.1%}",
                f"${off.cost_usd:.4f}",
                f"${on.cost_usd:.4f}",
                f"${saved:.4f} ({saved / off.cost_usd:.1%})",
            )
            for kind, values in (
                ("no cache", off.latencies_ms),
                ("miss", split(on, "miss")),
                ("hit", split(on, "hit")),
            ):
                latency.add_row(
                    f"{s:g}",
                    kind,
                    str(len(values)),
                    f"{pct(values, 50):.2f}",
                    f"{pct(values, 99):.2f}",
                    f"{statistics.fmean(values):.2f}" if values else "-",
                )
            assert on.upstream_calls == len(rows) - hits, "every miss, and only misses, called"
    console.print(costs)
    console.print(latency)


if __name__ == "__main__":
    asyncio.run(main())
