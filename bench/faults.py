"""Failover under injected faults: the real gateway in front of three fake upstreams.

    python bench/faults.py [--requests 2000] [--concurrency 50] [--failure-rate 0.3] [--seed 7]

Processes: the three fake upstreams (separate uvicorn servers, one process), the
gateway (real uvicorn, SQLite ledger in a temp dir, its own process) and this load
generator (httpx.AsyncClient, an asyncio.Semaphore, half the requests streamed).

Scenario "flaky": the policy tries the two flaky upstreams first (`flaky-openai`,
then `flaky-anthropic`; each fails 30% of calls with a seeded mix of 5xx, 429 with a
short Retry-After, 529, truncated bodies, connection resets, streams cut before the
first token and first tokens slower than the timeout), then `stable-openai`.
Scenario "all down": every upstream fails every call. Each scenario reports what the
caller saw, how many attempts it took, what failover added to latency, and whether
the ledger holds exactly one record per upstream call (the fakes' received-request
counts against the ledger, record ids unique).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from rich.console import Console
from rich.table import Table

from modelyard.testing.faults import Fault, FaultProfile
from modelyard.testing.upstream import FakeUpstream
from modelyard.testing.upstream import create_fake_upstream as fake_app
from modelyard.testing.wire import request_problem

KEYS = {"BENCH_KEY_1": "sk-bench-one-0123456789", "BENCH_KEY_2": "sk-ant-bench-two-0123456"}
KEYS["BENCH_KEY_3"] = "sk-bench-three-0123456789"
# name → (adapter, key env, $/Mtok in, $/Mtok out): cheapest first = the policy's order.
UPSTREAMS = {
    "flaky-openai": ("openai", "BENCH_KEY_1", "0.10", "0.40"),
    "flaky-anthropic": ("anthropic", "BENCH_KEY_2", "0.50", "2.00"),
    "stable-openai": ("openai", "BENCH_KEY_3", "3.00", "12.00"),
}
MIXED_FAULTS = [
    Fault.error(500),
    Fault.error(503),
    Fault.rate_limited(0.25),
    Fault.overloaded(),
    Fault.truncated(),
    Fault.reset(),
    Fault.stream_cut(after_chunks=1),
    Fault.slow_first_token(2.5),
]
DOWN_FAULTS = [Fault.error(500), Fault.error(503), Fault.overloaded(), Fault.reset()]
RESILIENCE = {
    "max_attempts": 3,
    "request_timeout_s": 20,
    "attempt_timeout_s": 1.5,
    "first_token_timeout_s": 1.0,
    "retry_wait_max_s": 0.5,
    "breaker": {"failure_threshold": 5, "cooldown_s": 2, "half_open_probes": 1},
}
STATS_PATH = "/_bench/stats"
Profiles = dict[str, tuple[float, list[Fault], int]]  # upstream → (failure rate, faults, seed)
# Unmeasured requests first (they do count in the ledger check); none when all is down,
# so the measured requests meet closed breakers.
WARMUP = 10


# --- the servers (child processes) ----------------------------------------------------


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _with_stats(app: Any, state: FakeUpstream) -> Any:
    """The fake app plus `GET /_bench/stats`: requests received and faults injected."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            stats = {
                "received": len(state.requests),
                "faults": dict(Counter(r.fault for r in state.requests if r.fault)),
            }
            body = json.dumps(stats).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped


def serve_fakes(profiles: Profiles, ports: Any) -> None:
    """Child process: one uvicorn server per fake upstream, all on one event loop."""
    for fmt in ("openai", "anthropic"):  # build the request validators up front (seconds)
        request_problem(fmt, {})
        request_problem(fmt, {"stream": True})
    servers, sockets = [], []
    for name, (_adapter, env, *_prices) in UPSTREAMS.items():
        rate, kinds, seed = profiles[name]
        state = FakeUpstream(openai_key=KEYS[env], anthropic_key=KEYS[env])
        state.faults = FaultProfile(rate, kinds, seed=seed) if rate else None
        config = uvicorn.Config(
            _with_stats(fake_app(state), state), log_level="error", lifespan="off"
        )
        servers.append(uvicorn.Server(config))
        sockets.append(_bind())
    ports.put([s.getsockname()[1] for s in sockets])

    async def main() -> None:
        await asyncio.gather(*(s.serve(sockets=[k]) for s, k in zip(servers, sockets, strict=True)))

    asyncio.run(main())


def serve_gateway(config_path: str, ledger_path: str, ports: Any) -> None:
    """Child process: the gateway exactly as `modelyard serve` builds it."""
    from modelyard.app_factory import load_stack
    from modelyard.ledger import open_ledger

    stack = load_stack(config_path, (), KEYS)
    app = stack.create_app(open_ledger(f"sqlite:///{ledger_path}"))
    sock = _bind()
    ports.put([sock.getsockname()[1]])
    config = uvicorn.Config(app, log_level="error", timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[sock])


def stack_config(fake_ports: list[int]) -> dict[str, Any]:
    """Three deployments on the three fakes; `cheapest` puts the flaky ones first."""
    deployments: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for (name, (adapter, env, price_in, price_out)), port in zip(
        UPSTREAMS.items(), fake_ports, strict=True
    ):
        url = f"http://127.0.0.1:{port}" + ("/v1" if adapter == "openai" else "")
        deployments[name] = {"adapter": adapter, "base_url": url, "api_key_env": env}
        models[f"bench/{name}"] = {
            "deployment": name,
            "upstream": name,
            "family": adapter,
            "capabilities": ["text", "streaming"],
            "context_window": 100_000,
            "max_output_tokens": 4_000,
            "prices": {"input": price_in, "output": price_out},
        }
    return {
        "deployments": deployments,
        "models": models,
        "policies": {"cheapest": {"type": "cheapest"}},
        "default_policy": "cheapest",
        "resilience": RESILIENCE,
    }


@dataclass
class Cluster:
    """The fakes' and the gateway's processes and addresses."""

    fakes: Any
    gateway: Any
    fake_urls: list[str]
    gateway_url: str
    ledger_path: Path

    def stop(self) -> None:
        """Gateway first (SIGTERM: graceful, the ledger is closed), then the fakes."""
        self.gateway.terminate()
        self.gateway.join(15)
        self.fakes.kill()
        self.fakes.join(5)


def _start(ctx: Any, target: Any, args: tuple[Any, ...]) -> tuple[Any, list[int]]:
    ports = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, ports), daemon=True)
    proc.start()
    return proc, ports.get(timeout=60)


def _wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


def start_cluster(workdir: Path, profiles: Profiles) -> Cluster:
    """Start the fakes, write the gateway's config for their ports, start the gateway."""
    ctx = mp.get_context("spawn")
    fakes, fake_ports = _start(ctx, serve_fakes, (profiles,))
    fake_urls = [f"http://127.0.0.1:{p}" for p in fake_ports]
    config_path = workdir / "stack.yaml"
    config_path.write_text(yaml.safe_dump(stack_config(fake_ports)), encoding="utf-8")
    ledger_path = workdir / "ledger.db"
    gateway, (port,) = _start(ctx, serve_gateway, (str(config_path), str(ledger_path)))
    cluster = Cluster(fakes, gateway, fake_urls, f"http://127.0.0.1:{port}", ledger_path)
    for url in [*fake_urls, cluster.gateway_url]:
        _wait_ready(url + "/health")
    return cluster


# --- the load -------------------------------------------------------------------------


@dataclass
class Result:
    """What one request got, as the caller saw it."""

    request_id: str
    stream: bool
    latency_s: float
    status: int = 0
    served: bool = False
    clean_error: bool = False
    detail: str = ""


def _is_openai_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error


async def _read_stream(response: httpx.Response, expected: str, result: Result) -> None:
    """A stream is served when its content is right and it ends with [DONE]."""
    text, last = "", None
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        payload = line.removeprefix("data: ")
        if payload == "[DONE]":
            last = "[DONE]"
            continue
        last = json.loads(payload)
        for choice in last.get("choices", []):
            text += choice["delta"].get("content") or ""
    result.served = last == "[DONE]" and text == expected
    result.clean_error = last != "[DONE]" and _is_openai_error(last)
    result.detail = "" if result.served else f"stream ended with {str(last)[:80]}"


async def one_request(
    http: httpx.AsyncClient, i: int, stream: bool, prefix: str = "bench"
) -> Result:
    """Send request `i` and classify the answer."""
    request_id = f"{prefix}-{i:06d}"
    messages = [{"role": "user", "content": f"question {i}"}]
    body: dict[str, Any] = {"model": "auto", "messages": messages}
    body["stream"] = stream
    result = Result(request_id, stream, 0.0)
    t0 = time.perf_counter()
    try:
        async with http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"x-request-id": request_id}
        ) as response:
            result.status = response.status_code
            if response.status_code != 200:
                data = json.loads(await response.aread())
                result.clean_error = _is_openai_error(data)
                result.detail = json.dumps(data)[:120]
            elif stream:
                await _read_stream(response, f"echo: question {i}", result)
            else:
                data = json.loads(await response.aread())
                result.served = data["choices"][0]["message"]["content"] == f"echo: question {i}"
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        result.detail = f"{type(exc).__name__}: {exc}"
    result.latency_s = time.perf_counter() - t0
    return result


async def run_load(
    url: str, requests: int, concurrency: int, warmup: int
) -> tuple[list[Result], float]:
    """`warmup` unmeasured requests one by one, then `requests` requests, `concurrency` at
    a time, every other one streamed."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        for i in range(warmup):  # first calls load tokenizers, open pools: not measured
            await one_request(http, i, stream=i % 2 == 1, prefix="warmup")

        async def bounded(i: int) -> Result:
            async with semaphore:
                return await one_request(http, i, stream=i % 2 == 1)

        t0 = time.perf_counter()
        results = await asyncio.gather(*(bounded(i) for i in range(requests)))
    return list(results), time.perf_counter() - t0


# --- the report -----------------------------------------------------------------------


@dataclass
class Scenario:
    """One run's results, fake-side counts and ledger records."""

    name: str
    results: list[Result]
    wall_s: float
    received: dict[str, int]
    faults: Counter[str]
    records: list[Any]
    attempts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        per_request = Counter(r.request_id for r in self.records)  # warm-up ones unused
        self.attempts = {r.request_id: per_request[r.request_id] for r in self.results}


async def read_ledger(path: Path) -> list[Any]:
    """Every record in the scenario's SQLite ledger."""
    from modelyard.ledger import open_ledger

    ledger = open_ledger(f"sqlite:///{path}")
    await ledger.open()
    try:
        return list(await ledger.records(limit=1_000_000))
    finally:
        await ledger.close()


def fake_stats(urls: list[str]) -> tuple[dict[str, int], Counter[str]]:
    """Requests each fake received, and the faults they injected, by label."""
    received: dict[str, int] = {}
    faults: Counter[str] = Counter()
    for name, url in zip(UPSTREAMS, urls, strict=True):
        stats = httpx.get(url + STATS_PATH, timeout=10).json()
        received[name] = stats["received"]
        faults.update(stats["faults"])
    return received, faults


def run_scenario(name: str, profiles: Profiles, warmup: int, args: argparse.Namespace) -> Scenario:
    """Start a cluster with these fault profiles, send the load, collect every count."""
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp:
        cluster = start_cluster(Path(tmp), profiles)
        try:
            load = run_load(cluster.gateway_url, args.requests, args.concurrency, warmup)
            results, wall_s = asyncio.run(load)
            time.sleep(0.5)  # let abandoned upstream calls land before counting
            received, faults = fake_stats(cluster.fake_urls)
        finally:
            cluster.stop()
        records = asyncio.run(read_ledger(cluster.ledger_path))
    return Scenario(name, results, wall_s, received, faults, records)


def _ms(values: list[float], *qs: float) -> str:
    """Percentiles of `values` (seconds) in ms, e.g. "120 / 900 ms"; "-" when empty."""
    if not values:
        return "-"
    ordered = sorted(values)
    picks = [ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] for q in qs]
    return " / ".join(f"{1000 * v:.0f}" for v in picks) + " ms"


def _share(n: int, total: int) -> str:
    return f"{n}/{total} ({100 * n / total:.1f}%)" if total else "0"


def summary_rows(s: Scenario) -> list[tuple[str, str]]:
    """The scenario's headline numbers, as (metric, value) rows."""
    total = len(s.results)
    served = [r for r in s.results if r.served]
    failed = [r for r in s.results if not r.served]
    clean = [r for r in failed if r.clean_error]
    other = [r for r in failed if not r.clean_error]
    by_status = Counter(r.status for r in failed)
    single = [r.latency_s for r in served if s.attempts[r.request_id] == 1]
    base = statistics.median(single) if single else 0.0
    added = [r.latency_s - base for r in served if s.attempts[r.request_id] > 1]
    counts = list(s.attempts.values())
    rows = [
        ("requests (half streamed)", f"{total} in {s.wall_s:.1f}s ({total / s.wall_s:.0f}/s)"),
        ("served correctly", _share(len(served), total)),
        ("failed with a clean OpenAI error", _share(len(clean), total)),
        ("  … by status", ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())) or "-"),
        ("other failures", _share(len(other), total) + _example(other)),
        ("latency p50 / p99, served in 1 attempt", _ms(single, 50, 99)),
        ("added by failover p50 / p99", f"{_ms(added, 50, 99)} ({len(added)} requests)"),
        ("latency p50 / p99, failed", _ms([r.latency_s for r in failed], 50, 99)),
        ("attempts per request mean / max", f"{statistics.mean(counts):.2f} / {max(counts)}"),
        ("attempts distribution", _distribution(counts)),
    ]
    return rows + ledger_rows(s)


def _example(other: list[Result]) -> str:
    return f" e.g. {other[0].detail[:60]}" if other else ""


def _distribution(counts: list[int]) -> str:
    dist = Counter(counts)
    return ", ".join(f"{k}: {_share(v, len(counts))}" for k, v in sorted(dist.items()))


def ledger_rows(s: Scenario) -> list[tuple[str, str]]:
    """Exactly one ledger record per upstream call: counts per deployment, unique ids."""
    billed = Counter(r.deployment for r in s.records)
    per_deployment = all(billed[name] == n for name, n in s.received.items())
    ids_unique = len({r.id for r in s.records}) == len(s.records)
    ok = per_deployment and ids_unique and sum(s.received.values()) == len(s.records)
    statuses = Counter(r.status for r in s.records)
    errors = Counter(r.error_class for r in s.records if r.error_class)
    return [
        ("upstream calls received (fakes)", ", ".join(f"{k}: {v}" for k, v in s.received.items())),
        ("ledger records", ", ".join(f"{k}: {billed[k]}" for k in s.received)),
        ("faults injected", ", ".join(f"{k}: {v}" for k, v in sorted(s.faults.items())) or "-"),
        ("ledger statuses", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))),
        ("ledger error classes", ", ".join(f"{k}: {v}" for k, v in errors.most_common()) or "-"),
        (
            "one record per upstream call",
            ("[green]yes[/green]" if ok else "[red]NO[/red]")
            + f" ({sum(s.received.values())} calls, {len(s.records)} records, "
            f"ids unique: {ids_unique})",
        ),
    ]


def render(console: Console, scenario: Scenario) -> bool:
    """Print the scenario's table; true when the ledger check passed."""
    table = Table(title=f"faults: {scenario.name}", show_lines=False)
    table.add_column("metric", style="bold")
    table.add_column("value")
    for metric, value in summary_rows(scenario):
        table.add_row(metric, value)
    console.print(table)
    return all(
        "[red]NO" not in value for metric, value in ledger_rows(scenario) if "one record" in metric
    )


def main(argv: list[str] | None = None) -> int:
    """Run both scenarios and print their tables; exit 1 if a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 110)
    console.print(
        f"[dim]{os.cpu_count()} CPUs, python {sys.version.split()[0]}; "
        f"{args.requests} requests at concurrency {args.concurrency}[/dim]"
    )
    flaky_profiles: Profiles = {
        name: (args.failure_rate if name.startswith("flaky") else 0.0, MIXED_FAULTS, args.seed + n)
        for n, name in enumerate(UPSTREAMS)
    }
    title = f"2 of 3 upstreams fail {args.failure_rate:.0%} of calls"
    ok = render(console, run_scenario(title, flaky_profiles, WARMUP, args))
    down_profiles: Profiles = {
        name: (1.0, DOWN_FAULTS, args.seed + n) for n, name in enumerate(UPSTREAMS)
    }
    down = run_scenario("all 3 upstreams down", down_profiles, 0, args)
    ok = render(console, down) and ok
    all_503 = all(r.status == 503 and r.clean_error for r in down.results)
    statuses = Counter(r.status for r in down.results)
    console.print(
        f"all down → clean 503 for every request: {'yes' if all_503 else 'NO'} "
        f"(statuses: {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})"
    )
    return 0 if ok and all_503 else 1


if __name__ == "__main__":
    sys.exit(main())
