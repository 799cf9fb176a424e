"""Budgets across replicas: does a team budget hold exactly, with one replica killed?

    python bench/budgets.py [--requests 3000] [--concurrency 60] [--seed 12]

Processes: a fake OpenAI upstream (its own process; counts every request it receives
by the request's `user`, a fresh id per client request, and answers after 0.1-1.5 s);
three gateway replicas (`python -m modelyard serve`, separate uvicorn processes on
loopback ports) sharing this machine's PostgreSQL (a scratch database
`modelyard_budgets_bench`) and Redis (a private key prefix, deleted afterwards); this
load generator. Two models on the fake at fixed prices: `bench/big` ($2.50/$10 per
Mtok, quality 0.9) and `bench/small` ($0.15/$0.60, quality 0.6), policy `best`. One
key in team `bench`, whose monthly budget is about a third of what the requests
would cost on the big model.

A run: 3,000 requests at concurrency 60, spread round-robin over the replicas (a
request that finds its replica dead goes to the next), half of them streamed, with
random `max_tokens` (32-256). After half the requests, one replica is SIGKILLed and
restarted. Then: wait until no `started` record is left and the reservation TTL
(20 s here) has passed, and print the team's spend in the ledger against the budget
(the overshoot must be $0), served / downgraded / capped / refused, the reservations
still held (leaks: must be 0), the ledger's records against the calls the fake
received, and the budget check's own latency (p50/p99 per gate call, from the
replicas). Then the same run with Redis off (each replica counts alone, from the
ledger at its start: per-replica limits), to show the difference.
Traffic stays on 127.0.0.1. Exits 1 if the Redis run overshoots or leaks.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash import KEY, STATS_PATH, Gateway, serve_upstream

from modelyard.admin import KeySpec, create_key, set_budget
from modelyard.keys import KeyStore
from modelyard.ledger import SqlLedger

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DB = "modelyard_budgets_bench"
REDIS_URL = os.environ.get("MODELYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_KEY = "bench-admin-" + secrets.token_hex(8)
TTL_S = 20.0


def gateway_config(upstream_port: int, prefix: str) -> dict[str, Any]:
    def card(input_price: str, output_price: str, quality: float) -> dict[str, Any]:
        return {
            "deployment": "fake",
            "upstream": "gpt-test",
            "capabilities": ["text", "streaming"],
            "context_window": 16_000,
            "max_output_tokens": 1_000,
            "prices": {"input": input_price, "output": output_price},
            "quality": {"default": quality},
        }

    return {
        "deployments": {
            "fake": {
                "adapter": "openai",
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key_env": "CRASH_KEY",
            }
        },
        "models": {"bench/big": card("2.50", "10", 0.9), "bench/small": card("0.15", "0.60", 0.6)},
        "policies": {"best": {"type": "best"}},
        "default_policy": "best",
        "resilience": {"request_timeout_s": 15, "max_attempts": 2},
        "budgets": {"reservation_ttl_s": TTL_S, "refresh_s": 1, "redis_prefix": prefix},
    }


# One `python -m modelyard serve` subprocess per replica.
Replica = Gateway


@dataclass
class Run:
    """What one run measured."""

    redis: bool
    budget: Decimal
    statuses: Counter[int] = field(default_factory=Counter)
    spend: Decimal = Decimal(0)
    downgraded: int = 0
    capped: int = 0
    records: Counter[str] = field(default_factory=Counter)
    fake_calls: int = 0
    lost: int = 0
    never_sent: int = 0
    duplicated: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    leaks: int = -1
    p50_ms: float = 0.0
    p99_ms: float = 0.0


def fresh_database() -> str:
    import psycopg

    base = make_url(os.environ.get("MODELYARD_TEST_POSTGRES_URL", DEFAULT_PG))
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return base.set(database=BENCH_DB).render_as_string(hide_password=False)


async def make_key(url: str, budget: Decimal) -> str:
    ledger = SqlLedger(url)
    await ledger.open()
    store = await KeyStore.for_ledger(ledger)
    secret, _ = await create_key(store, KeySpec(name="bench-bot", team="bench"))
    await set_budget(store, "team", "bench", f"{budget}/month")
    await ledger.close()
    return secret


async def load(
    replicas: list[Replica],
    secret: str,
    args: Any,
    rng: random.Random,
    kill_at: int,
    errors: Counter[str],
) -> Counter[int]:
    """`args.requests` requests at `args.concurrency`; kill and restart replica 0 midway.
    `errors` counts the messages of answers other than 200 and 402."""
    statuses: Counter[int] = Counter()
    queue = list(range(args.requests))
    headers = {"authorization": f"Bearer {secret}"}
    killed = False

    async def one(c: httpx.AsyncClient, i: int) -> None:
        body = {
            "model": "auto",
            "user": uuid.uuid4().hex,
            "stream": rng.random() < 0.5,
            "max_tokens": rng.randint(32, 256),
            "messages": [{"role": "user", "content": f"budget bench {i}"}],
        }
        for hop in range(len(replicas)):
            url = replicas[(i + hop) % len(replicas)].url
            try:
                async with c.stream(
                    "POST", f"{url}/v1/chat/completions", json=body, headers=headers
                ) as r:
                    raw = b"".join([chunk async for chunk in r.aiter_bytes()])
                    statuses[r.status_code] += 1
                    if r.status_code not in (200, 402):
                        errors[f"{r.status_code}: {raw[:160].decode(errors='replace')}"] += 1
                    return
            except httpx.HTTPError:
                continue  # that replica is dead: the next one (a load balancer's retry)
        statuses[0] += 1

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal killed
        while queue:
            i = queue.pop(0)
            if i >= kill_at and not killed:
                killed = True
                replicas[0].kill()
                await asyncio.to_thread(replicas[0].start)
            await one(c, i)

    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as c:
        await asyncio.gather(*(worker(c) for _ in range(args.concurrency)))
    return statuses


def ledger_facts(url: str) -> tuple[list[tuple[str | None, str, str | None]], Decimal]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = [
                (caller, status, note)
                for caller, status, note in conn.execute(
                    text("SELECT caller, status, budget_note FROM call_records")
                )
            ]
            nanos = conn.execute(
                text("SELECT coalesce(sum(cost_nanousd), 0) FROM call_records WHERE team='bench'")
            ).scalar_one()
    finally:
        engine.dispose()
    return rows, Decimal(int(nanos)).scaleb(-9)


def wait_settled(url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows, _ = ledger_facts(url)
        if not any(status == "started" for _, status, _ in rows):
            return
        time.sleep(0.5)
    raise RuntimeError("started records left after 90 s")


def one_run(redis: bool, upstream_port: int, workdir: Path, args: Any) -> Run:
    url = fresh_database()
    prefix = f"modelyard-bench-{secrets.token_hex(4)}:"
    config = workdir / f"stack-{redis}.yaml"
    config.write_text(yaml.safe_dump(gateway_config(upstream_port, prefix)))
    budget = Decimal(args.budget)
    secret = asyncio.run(make_key(url, budget))
    env = {
        **os.environ,
        "CRASH_KEY": KEY,
        "MODELYARD_DATABASE_URL": url,
        "MODELYARD_HOME": str(workdir),
        "MODELYARD_ADMIN_KEY": ADMIN_KEY,
    }
    env.pop("MODELYARD_REDIS_URL", None)
    if redis:
        env["MODELYARD_REDIS_URL"] = REDIS_URL
    replicas = [Replica(config, env, workdir / f"replica{i}.log") for i in range(3)]
    for r in replicas:
        r.start()
    before = fake_counts(upstream_port)
    run = Run(redis, budget)
    try:
        rng = random.Random(args.seed)
        run.statuses = asyncio.run(
            load(replicas, secret, args, rng, args.requests // 2, run.errors)
        )
        wait_settled(url)
        time.sleep(TTL_S + 1)  # every reservation of the killed replica has expired
        gate_status(replicas, run)
    finally:
        for r in replicas:
            r.stop()
        if redis:
            drop_prefix(prefix)
    after = fake_counts(upstream_port)
    calls = after - before
    rows, run.spend = ledger_facts(url)
    by_caller = Counter(c for c, _, _ in rows)
    run.records = Counter(s for _, s, _ in rows)
    run.downgraded = sum(1 for _, s, n in rows if s == "ok" and n and n.startswith("downgraded"))
    run.capped = sum(1 for _, s, n in rows if s == "ok" and n and n.startswith("capped"))
    run.fake_calls = sum(calls.values())
    run.lost = sum(max(0, k - by_caller[u]) for u, k in calls.items())
    run.never_sent = sum(k for u, k in by_caller.items() if not calls[u])
    run.duplicated = sum(max(0, k - calls[u]) for u, k in by_caller.items() if calls[u])
    return run


def gate_status(replicas: list[Replica], run: Run) -> None:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    p50s, p99s, leaks = [], [], 0
    for r in replicas:
        status = httpx.get(f"{r.url}/admin/budgets/status", headers=headers, timeout=10).json()
        p50s.append(status["p50_ms"])
        p99s.append(status["p99_ms"])
        leaks = max(leaks, status["open_reservations"])
    run.leaks = leaks
    run.p50_ms, run.p99_ms = sorted(p50s)[1], max(p99s)


def fake_counts(port: int) -> Counter[str]:
    return Counter(httpx.get(f"http://127.0.0.1:{port}{STATS_PATH}", timeout=10).json())


def drop_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def report(run: Run) -> str:
    over = max(Decimal(0), run.spend - run.budget)
    s = run.statuses
    records = ", ".join(f"{k} {v}" for k, v in sorted(run.records.items()))
    return (
        f"Redis {'on ' if run.redis else 'off'}: spend ${run.spend:.6f} of ${run.budget} "
        f"(overshoot ${over:.6f}); served {s[200]} (downgraded {run.downgraded}, "
        f"max_tokens capped {run.capped}), refused 402 {s[402]}, other "
        f"{ {k: v for k, v in s.items() if k not in (200, 402)} }; reservations held after "
        f"the TTL {run.leaks}; ledger records {sum(run.records.values())} ({records}) vs "
        f"fake calls {run.fake_calls}: lost {run.lost}, never sent {run.never_sent}, "
        f"more records than calls for one client request {run.duplicated}; "
        f"budget check p50 {run.p50_ms:.3f} ms, p99 {run.p99_ms:.3f} ms per gate call"
    )


async def quiet_latency(n: int = 2000) -> tuple[float, float]:
    """The gate's added latency per request on an idle loopback Redis: allowance (the
    planning snapshot) + reserve + settle, in process, `n` times; (p50, p99) in ms."""
    import statistics

    from modelyard.budgets.gate import BudgetGate
    from modelyard.budgets.redis_state import RedisBudgets
    from modelyard.budgets.wiring import redis_client
    from modelyard.keys import Principal
    from modelyard.ledger import InMemoryLedger

    ledger = InMemoryLedger()
    await ledger.open()
    store = await KeyStore.for_ledger(ledger)
    _, key = await create_key(store, KeySpec(name="quiet", team="quiet"))
    await set_budget(store, "team", "quiet", "1000000/month")
    await set_budget(store, "key", "quiet", "1000000/day")
    client = redis_client(REDIS_URL)
    prefix = f"modelyard-bench-{secrets.token_hex(4)}:"
    gate = BudgetGate(store, ledger, RedisBudgets(client, prefix), shared=True, refresh_s=3600)
    who = Principal(key=key, user="u1")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        await gate.allowance(who)
        await gate.reserve(f"q{i}", who, Decimal("0.001"))
        await gate.settle(f"q{i}", Decimal("0.0005"))
        times.append(time.perf_counter() - t0)
    await client.aclose()
    drop_prefix(prefix)
    q = statistics.quantiles(times[100:], n=100)
    return q[49] * 1000, q[98] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=60)
    parser.add_argument("--budget", default="0.10", help="the team's budget, dollars")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--redis", default="on,off")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    upstream = ctx.Process(target=serve_upstream, args=(args.seed, ports), daemon=True)
    upstream.start()
    port = int(ports.get(timeout=60))
    runs = []
    with tempfile.TemporaryDirectory(prefix="modelyard-budgets-") as tmp:
        for mode in args.redis.split(","):
            run = one_run(mode == "on", port, Path(tmp), args)
            runs.append(run)
            print(report(run), flush=True)
            for message, n in run.errors.most_common(3):
                print(f"    {n} x {message}", flush=True)
    upstream.kill()
    p50, p99 = asyncio.run(quiet_latency())
    print(
        f"budget check per request on idle loopback Redis (allowance + reserve + settle, "
        f"2 budgets): p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )
    bad = [r for r in runs if r.redis and (r.spend > r.budget or r.leaks or r.lost)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
