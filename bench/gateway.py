"""Gateway overhead, side by side: what modelyard (and LiteLLM's proxy) add to a call.

    python bench/gateway.py                          # everything, ~10 minutes
    python bench/gateway.py --targets sqlite --rates 500 --duration 5   # one phase
    python bench/gateway.py --targets memory,sqlite,postgres,litellm --no-workers2

A compiled fake upstream (bench/gatewaybench/upstream.c: C, epoll, keep-alive, a
fixed chat completion) and the open-loop load generator (bench/gatewaybench/
loadgen.py) share core 1; the gateway is pinned alone to core 0. Each tick of the
generator sends the same request straight to the upstream and through the gateway,
so added latency = gateway - direct at each percentile. Per target:

  - added latency p50/p90/p99 at each fixed rate (open loop, latency from the
    scheduled send time);
  - saturation: answered req/s with `--concurrency` callers back to back;
  - CPU per request: the gateway process tree's user+system CPU (/proc, the same
    counters as rusage) over a phase, divided by the requests it answered;
  - foreign CPU: cores' busy time (/proc/stat) minus our processes' (gateway,
    upstream, this generator), per phase: how far from quiet the machine was (a
    PostgreSQL ledger's server CPU counts as foreign);
  - a flame-graph summary: py-spy samples of the gateway at `--profile-rate`.

Targets: modelyard with an in-memory, a SQLite and a PostgreSQL ledger (a scratch
database on MODELYARD_TEST_POSTGRES_URL's server), and LiteLLM's proxy (no
database) when installed: `--litellm PATH` or `$LITELLM_BIN` naming its `litellm`
CLI, default /work/litellm-venv/bin/litellm; install it outside this repository,
e.g. `python -m venv /work/litellm-venv && /work/litellm-venv/bin/pip install
'litellm[proxy]'`. Last, modelyard with `--workers 2` on both cores (SQLite),
saturation only, for the scaling. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gatewaybench import ab, loadgen, procs, profile

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DB = "modelyard_gateway_bench"
GATEWAY_CORE, LOAD_CORE = 0, 1


@dataclass
class Phase:
    label: str
    wall_s: float
    gateway_ok: int
    gateway_errors: dict[str, int]
    cpu_ms_per_request: float
    foreign_cores: float
    direct: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)

    def added(self, q: float) -> float:
        return loadgen.percentile(self.gateway, q) - loadgen.percentile(self.direct, q)


@dataclass
class Result:
    target: str
    phases: list[Phase] = field(default_factory=list)
    saturation: float = float("nan")
    saturation_cpu_ms: float = float("nan")
    saturation_foreign: float = float("nan")
    flame: str = ""


class Meter:
    """CPU of the gateway, of our own processes, and of the whole machine, over a span."""

    def __init__(self, gateway: procs.Process, upstream: procs.Process) -> None:
        self.gateway = gateway
        self.upstream = upstream

    def _ours(self) -> float:
        return procs.cpu_seconds([os.getpid(), *self.upstream.pids, *self.gateway.pids])

    def __enter__(self) -> Meter:
        self.t0 = time.perf_counter()
        self.gw0 = self.gateway.cpu()
        self.ours0 = self._ours()
        self.busy0 = procs.machine_busy_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.gateway_cpu = self.gateway.cpu() - self.gw0
        foreign = procs.machine_busy_seconds() - self.busy0 - (self._ours() - self.ours0)
        self.foreign_cores = max(0.0, foreign) / self.wall


def postgres_url() -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(os.environ.get("MODELYARD_TEST_POSTGRES_URL", DEFAULT_PG))
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return base.set(database=BENCH_DB).render_as_string(hide_password=False)


async def rate_phase(
    rate: float, duration: float, direct: loadgen.Target, gw: loadgen.Target, meter: Meter
) -> Phase:
    with meter:
        samples = await loadgen.open_loop([direct, gw], rate, duration)
    g = samples[gw.name]
    # Requests the gateway finished (answered or refused); not the ones abandoned.
    answered = len(g.ok) + sum(n for what, n in g.errors.items() if what != "unanswered")
    return Phase(
        label=f"{rate:g} req/s",
        wall_s=meter.wall,
        gateway_ok=len(g.ok),
        gateway_errors=g.errors,
        cpu_ms_per_request=1000 * meter.gateway_cpu / max(1, answered),
        foreign_cores=meter.foreign_cores,
        direct=samples[direct.name].ok,
        gateway=g.ok,
    )


async def measure(
    name: str,
    gateway: procs.Process,
    port: int,
    upstream: procs.Process,
    upstream_port: int,
    args: argparse.Namespace,
    workdir: Path,
) -> Result:
    result = Result(name)
    direct = loadgen.Target("direct", upstream_port)
    gw = loadgen.Target(name, port)
    meter = Meter(gateway, upstream)
    await loadgen.closed_loop(gw, 8, 2.0)  # warm-up: connections, caches, first calls
    if args.saturation_s > 0:
        await loadgen.settle(gw)
        with meter:
            ok, _ = await loadgen.closed_loop(gw, args.concurrency, args.saturation_s)
        result.saturation = ok / meter.wall
        result.saturation_cpu_ms = 1000 * meter.gateway_cpu / max(1, ok)
        result.saturation_foreign = meter.foreign_cores
        print(
            f"  {name}: saturation {result.saturation:,.0f} req/s at concurrency "
            f"{args.concurrency} ({result.saturation_cpu_ms:.2f} ms CPU/request, "
            f"foreign CPU {meter.foreign_cores:.2f} cores)",
            flush=True,
        )
    for rate in args.rates:
        if rate > result.saturation and not args.force_rates:
            # Past saturation an open loop only measures the queue it builds.
            print(f"  {name} @ {rate:g} req/s: over saturation, not run (--force-rates)")
            continue
        await loadgen.settle(gw)
        phase = await rate_phase(rate, args.duration, direct, gw, meter)
        result.phases.append(phase)
        print(_phase_line(name, phase), flush=True)
    if args.profile_s > 0:
        raw = workdir / f"{name}.pyspy.txt"
        # Below saturation: a profile of a backlog shows request parsing, not the path.
        rate = args.profile_rate
        if not math.isnan(result.saturation):
            rate = min(rate, max(1.0, 0.8 * result.saturation))
        await loadgen.settle(gw)
        load = asyncio.ensure_future(loadgen.open_loop([gw], rate, args.profile_s + 2))
        recorded = await asyncio.to_thread(
            profile.record, gateway.proc.pid, args.profile_s, raw, args.native
        )
        await load
        if recorded is None:
            result.flame = "  (py-spy not available or not permitted: no profile)"
        else:
            result.flame = profile.summarise(recorded)
        print(f"  {name}: py-spy at {rate:g} req/s\n{result.flame}", flush=True)
    direct.close()
    gw.close()
    return result


def _phase_line(name: str, p: Phase) -> str:
    errors = f", errors {p.gateway_errors}" if p.gateway_errors else ""
    return (
        f"  {name} @ {p.label}: added p50 {p.added(50):.2f} / p90 {p.added(90):.2f} / "
        f"p99 {p.added(99):.2f} ms (direct p50 {loadgen.percentile(p.direct, 50):.2f}, "
        f"gateway p50 {loadgen.percentile(p.gateway, 50):.2f} ms); "
        f"{p.cpu_ms_per_request:.2f} ms CPU/request; foreign CPU {p.foreign_cores:.2f} "
        f"cores{errors}"
    )


def _start(
    target: str, upstream_port: int, workdir: Path, args: argparse.Namespace
) -> tuple[procs.Process, int] | None:
    cores = [GATEWAY_CORE] if args.pin else None
    if target == "litellm":
        binary = procs.litellm_binary(args.litellm)
        if binary is None:
            print("litellm: not installed (--litellm PATH or $LITELLM_BIN): skipped")
            return None
        return procs.start_litellm(binary, upstream_port, workdir, cores=cores)
    url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{workdir / 'ledger.db'}",
        "postgres": postgres_url() if target == "postgres" else "",
    }[target]
    return procs.start_modelyard(url, upstream_port, workdir, cores=cores)


async def run(args: argparse.Namespace) -> list[Result]:
    workdir = Path(tempfile.mkdtemp(prefix="modelyard-gateway-bench-"))
    binary = procs.build_upstream(workdir)
    upstream_port = procs.free_port()
    pin = [LOAD_CORE] if args.pin else None
    upstream = procs.Process(
        "upstream", [str(binary), str(upstream_port)], cores=pin, log=workdir / "upstream.log"
    )
    if args.pin:
        os.sched_setaffinity(0, {LOAD_CORE})
    results: list[Result] = []
    try:
        await asyncio.sleep(0.3)
        direct = loadgen.Target("direct", upstream_port)
        with Meter(upstream, upstream) as meter:
            ok, _ = await loadgen.closed_loop(direct, args.concurrency, 3.0)
        direct.close()
        print(
            f"fake upstream ceiling: {ok / meter.wall:,.0f} req/s with this generator on one "
            f"core (upstream CPU {1e6 * meter.gateway_cpu / max(1, ok):.0f} us/request; "
            f"foreign CPU {meter.foreign_cores:.2f} cores)",
            flush=True,
        )
        for target in args.targets:
            started = _start(target, upstream_port, workdir, args)
            if started is None:
                continue
            gateway, port = started
            name = target if target == "litellm" else f"modelyard-{target}"
            try:
                results.append(
                    await measure(name, gateway, port, upstream, upstream_port, args, workdir)
                )
            finally:
                gateway.stop()
        if args.workers2:
            results.extend(await scaling(args, upstream, upstream_port, workdir))
        if args.ab_src:
            os.sched_setaffinity(0, {LOAD_CORE} if args.pin else set(range(os.cpu_count() or 1)))
            ledger = f"sqlite:///{workdir}/ab-{{n}}.db"
            cores = [GATEWAY_CORE] if args.pin else None
            src = Path(args.ab_src)
            print(await ab.compare(src, ledger, upstream_port, workdir, cores=cores), flush=True)
    finally:
        upstream.stop()
    return results


async def scaling(
    args: argparse.Namespace, upstream: procs.Process, upstream_port: int, workdir: Path
) -> list[Result]:
    """modelyard (SQLite) with --workers 2 and no pinning: saturation on both cores."""
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    url = f"sqlite:///{workdir / 'ledger-2w.db'}"
    gateway, port = procs.start_modelyard(url, upstream_port, workdir, cores=None, workers=2)
    try:
        gw = loadgen.Target("modelyard-sqlite-2w", port)
        await loadgen.closed_loop(gw, 8, 2.0)
        await loadgen.settle(gw)
        with Meter(gateway, upstream) as meter:
            ok, _ = await loadgen.closed_loop(gw, args.concurrency, max(args.saturation_s, 3))
        gw.close()
    finally:
        gateway.stop()
    result = Result("modelyard-sqlite --workers 2 (both cores, unpinned)")
    result.saturation = ok / meter.wall
    result.saturation_cpu_ms = 1000 * meter.gateway_cpu / max(1, ok)
    result.saturation_foreign = meter.foreign_cores
    print(
        f"  {result.target}: saturation {result.saturation:,.0f} req/s "
        f"({result.saturation_cpu_ms:.2f} ms CPU/request; foreign {meter.foreign_cores:.2f})",
        flush=True,
    )
    return [result]


def report(results: list[Result], rates: list[float]) -> None:
    print("\n## Added latency (gateway - direct), ms: p50 / p90 / p99; CPU ms/request; foreign")
    header = ["target", *(f"{r:g}/s" for r in rates), "saturation req/s", "CPU ms/req @sat"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for res in results:
        cells = [res.target]
        for rate in rates:
            phase = next((p for p in res.phases if p.label == f"{rate:g} req/s"), None)
            if phase is None:
                cells.append("-")
                continue
            lost = sum(phase.gateway_errors.values())
            cells.append(
                f"{phase.added(50):.2f} / {phase.added(90):.2f} / {phase.added(99):.2f}; "
                f"{phase.cpu_ms_per_request:.2f} ms; {phase.foreign_cores:.2f}"
                + (f"; {lost} errors" if lost else "")
            )
        sat = res.saturation
        foreign = res.saturation_foreign
        cells.append("-" if math.isnan(sat) else f"{sat:,.0f} (foreign {foreign:.2f})")
        cells.append("-" if math.isnan(sat) else f"{res.saturation_cpu_ms:.2f}")
        print("| " + " | ".join(cells) + " |")
    litellm = next((r for r in results if r.target == "litellm"), None)
    if litellm is not None and not math.isnan(litellm.saturation):
        for res in results:
            if res.target.startswith("modelyard") and not math.isnan(res.saturation):
                ratio = res.saturation / litellm.saturation
                print(f"{res.target}: {ratio:.1f}x LiteLLM's saturation throughput")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--targets", default="memory,sqlite,postgres,litellm", help="'' for none (A/B only)"
    )
    parser.add_argument("--rates", default="100,200,500,1000")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per rate")
    parser.add_argument("--saturation-s", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--profile-s", type=float, default=6.0, help="0: no py-spy")
    parser.add_argument("--profile-rate", type=float, default=500.0)
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument(
        "--ab-src",
        default=None,
        help="another checkout's src/ (e.g. main): A/B CPU per request against it",
    )
    parser.add_argument(
        "--force-rates", action="store_true", help="run rates above the saturation too"
    )
    parser.add_argument("--litellm", default=None, help="path to LiteLLM's litellm CLI")
    parser.add_argument("--no-workers2", dest="workers2", action="store_false")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if args.pin and (os.cpu_count() or 1) < 2:
        print("fewer than 2 cores: running unpinned")
        args.pin = False
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    results = asyncio.run(run(args))
    report(results, args.rates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
