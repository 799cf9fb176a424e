"""kill -9 under load: is every provider call in the ledger, exactly once?

    python bench/crash.py [--runs 5] [--concurrency 50] [--db sqlite,postgres] [--seed 13]

Processes: a fake OpenAI upstream (its own process) that counts every request it
receives by the request's `user` (a fresh id per client request) and answers after
0.1-1.5 s; the real gateway (`python -m modelyard serve`, a uvicorn subprocess) on
SQLite or PostgreSQL in front of it; this load generator (50 concurrent clients,
half of them streaming). Each run: load for a random 1-3 s, SIGKILL the gateway,
restart it (start-up closes what the dead process left open), wait until no
`started` record is left, then compare, per client request, the calls the upstream
received with the ledger's records. lost = calls with no record; duplicated = a
second record for one call; never sent = a record whose call never arrived (written
ahead, then killed before the request left: billed as interrupted). Exits 1 on any
loss or duplicate. Traffic stays on 127.0.0.1.
PostgreSQL: a scratch database `modelyard_crash_bench` on the server named by
MODELYARD_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from modelyard.testing.upstream import FakeUpstream
from modelyard.testing.upstream import create_fake_upstream as fake_app
from modelyard.testing.wire import request_problem

KEY = "sk-crash-bench-0123456789abcdef"
STATS_PATH = "/_bench/stats"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DB = "modelyard_crash_bench"


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def counting_upstream(app: Any, seed: int) -> Any:
    """The fake, counting each request by `user` the moment its body has arrived,
    then answering after a random delay (so many calls are in flight at a kill)."""
    received: Counter[str] = Counter()
    rng = random.Random(seed)

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["path"] == STATS_PATH:
            body = json.dumps(received).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the gateway died before the body arrived: not a call
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            received[str(json.loads(raw).get("user"))] += 1
        except ValueError:
            received["<unparsable>"] += 1
        await asyncio.sleep(rng.uniform(0.1, 1.5))
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return wrapped


def serve_upstream(seed: int, ports: Any) -> None:
    """Child process: the counting fake upstream."""
    request_problem("openai", {})  # build the validators before serving (seconds)
    request_problem("openai", {"stream": True})
    state = FakeUpstream(openai_key=KEY)
    sock = _bind()
    ports.put(sock.getsockname()[1])
    config = uvicorn.Config(
        counting_upstream(fake_app(state), seed), log_level="error", lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[sock])


def gateway_config(upstream_port: int) -> dict[str, Any]:
    card = {
        "deployment": "fake",
        "upstream": "gpt-test",
        "capabilities": ["text", "streaming"],
        "context_window": 16_000,
        "max_output_tokens": 1_000,
        "prices": {"input": "0.15", "output": "0.60"},
    }
    return {
        "deployments": {
            "fake": {
                "adapter": "openai",
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "api_key_env": "CRASH_KEY",
            }
        },
        "models": {"bench/gpt": card},
        "policies": {"cheapest": {"type": "cheapest"}},
        "default_policy": "cheapest",
    }


class Gateway:
    """`python -m modelyard serve` as a subprocess: start, health-wait, SIGKILL.
    `bench/budgets.py` runs its replicas with it too."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @classmethod
    def with_ledger(cls, config: Path, ledger_url: str, workdir: Path) -> Gateway:
        env = {
            **os.environ,
            "CRASH_KEY": KEY,
            "MODELYARD_DATABASE_URL": ledger_url,
            "MODELYARD_HOME": str(workdir),
        }
        return cls(config, env, workdir / "gateway.log")

    @property
    def ledger_url(self) -> str:
        return self.env["MODELYARD_DATABASE_URL"]

    def start(self) -> float:
        """Start it and wait until /health answers; the seconds that took."""
        with _bind() as sock:
            self.port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "modelyard", "serve", "--config", str(self.config)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        t0 = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited on start (see {self.log})")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("gateway not ready after 60 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()  # reaped: a zombie's pid would still look alive

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


async def load(url: str, concurrency: int, seconds: float, rng: random.Random) -> int:
    """Closed-loop clients until `seconds` pass (the kill comes then); requests sent."""
    sent = 0
    stop_at = time.monotonic() + seconds

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.monotonic() < stop_at:
            body = {
                "model": "auto",
                "user": uuid.uuid4().hex,
                "stream": rng.random() < 0.5,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "crash bench"}],
            }
            sent += 1
            try:
                async with c.stream("POST", "/v1/chat/completions", json=body) as response:
                    async for _ in response.aiter_bytes():
                        pass
            except httpx.HTTPError:
                await asyncio.sleep(0.05)  # the gateway is down: the run is ending

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
        tasks = [asyncio.create_task(client(c)) for _ in range(concurrency)]
        try:
            await asyncio.sleep(seconds)
        finally:
            # Stop the clients before their connection pool closes under them.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return sent


def ledger_rows(url: str) -> list[tuple[str | None, str]]:
    engine = create_engine(url)
    query = text("SELECT caller, status FROM call_records")
    try:
        with engine.connect() as conn:
            return [(caller, status) for caller, status in conn.execute(query)]
    finally:
        engine.dispose()


def wait_settled(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(status == "started" for _, status in ledger_rows(url)):
            return
        time.sleep(0.2)
    raise RuntimeError("started records were not closed after restart")


@dataclass
class Run:
    db: str
    number: int
    kill_after_s: float
    calls: int
    records: Counter[str]
    lost: int
    duplicated: int
    never_sent: int
    restart_s: float


def one_run(db: str, n: int, gw: Gateway, upstream_url: str, args: Any, rng: random.Random) -> Run:
    before = Counter(httpx.get(upstream_url + STATS_PATH).json())
    seen_callers = {c for c, _ in ledger_rows(gw.ledger_url)}
    kill_after = rng.uniform(1.0, 3.0)

    async def load_then_kill() -> None:
        load_task = asyncio.create_task(load(gw.url, args.concurrency, 30, rng))
        await asyncio.sleep(kill_after)
        gw.kill()
        await asyncio.sleep(0.3)  # let in-flight upstream arrivals be counted
        load_task.cancel()
        await asyncio.gather(load_task, return_exceptions=True)

    asyncio.run(load_then_kill())
    restart_s = gw.start()
    wait_settled(gw.ledger_url)
    calls = Counter(httpx.get(upstream_url + STATS_PATH).json()) - before
    rows = [(c, s) for c, s in ledger_rows(gw.ledger_url) if c not in seen_callers]
    by_caller = Counter(c for c, _ in rows)
    lost = sum(max(0, k - by_caller[u]) for u, k in calls.items())
    # More records than calls for one client request: a second record for a call that
    # did arrive is a duplicate; a record whose call never arrived was written ahead,
    # then the process died before the request left (billed as interrupted).
    duplicated = sum(max(0, k - calls[u]) for u, k in by_caller.items() if calls[u])
    never_sent = sum(k for u, k in by_caller.items() if not calls[u])
    statuses = Counter(s for _, s in rows)
    total = sum(calls.values())
    return Run(db, n, kill_after, total, statuses, lost, duplicated, never_sent, restart_s)


def postgres_url() -> str:
    import psycopg

    base = make_url(os.environ.get("MODELYARD_TEST_POSTGRES_URL", DEFAULT_PG))
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    url = base.set(drivername="postgresql+psycopg", database=BENCH_DB)
    return url.render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    upstream = ctx.Process(target=serve_upstream, args=(args.seed, ports), daemon=True)
    upstream.start()
    upstream_url = f"http://127.0.0.1:{ports.get(timeout=60)}"
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-crash-") as tmp:
        workdir = Path(tmp)
        config = workdir / "stack.yaml"
        config.write_text(yaml.safe_dump(gateway_config(int(upstream_url.rsplit(":", 1)[1]))))
        for db in args.db.split(","):
            url = f"sqlite:///{workdir / 'ledger.db'}" if db == "sqlite" else postgres_url()
            gw = Gateway.with_ledger(config, url, workdir)
            gw.start()
            try:
                for n in range(1, args.runs + 1):
                    run = one_run(db, n, gw, upstream_url, args, rng)
                    runs.append(run)
                    print(_line(run), flush=True)
            finally:
                gw.stop()
    upstream.kill()
    bad = [r for r in runs if r.lost or r.duplicated]
    total = sum(r.calls for r in runs)
    unsent = sum(r.never_sent for r in runs)
    print(
        f"\n{len(runs)} runs, {total} upstream calls: lost {sum(r.lost for r in runs)}, "
        f"duplicated {sum(r.duplicated for r in runs)}; written ahead but killed before "
        f"the request left (billed as interrupted) {unsent}"
    )
    return 1 if bad else 0


def _line(r: Run) -> str:
    settled = r.records["ok"] + r.records["interrupted"]
    others = {k: v for k, v in r.records.items() if k not in ("ok", "interrupted")}
    return (
        f"{r.db:8} run {r.number}: killed after {r.kill_after_s:.2f}s; upstream calls "
        f"{r.calls:4d}; records ok {r.records['ok']:4d} + interrupted "
        f"{r.records['interrupted']:3d} = {settled:4d}"
        f"{' ' + str(others) if others else ''}; lost {r.lost}, duplicated {r.duplicated}, "
        f"never sent {r.never_sent}; "
        f"restart {r.restart_s:.1f}s"
    )


if __name__ == "__main__":
    sys.exit(main())
