"""A/B CPU per request: this checkout against another (`--ab-src`), interleaved.

On a shared machine absolute CPU figures drift with the neighbours' load (cache and
SMT contention inflate them). Two gateways, same config and ledger kind, both pinned
to the gateway core, are loaded in alternation (closed loop, `concurrency` callers,
`round_s` each) for `rounds` rounds; each round's CPU per request is the gateway's
CPU over the requests it answered. The median per side and their ratio are what
this change saved, measured under the same conditions.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from gatewaybench import loadgen, procs


async def compare(
    baseline_src: Path,
    ledger: str,
    upstream_port: int,
    workdir: Path,
    *,
    cores: Sequence[int] | None,
    rounds: int = 6,
    round_s: float = 4.0,
    concurrency: int = 8,
) -> str:
    sides: dict[str, list[float]] = {"baseline": [], "this checkout": []}
    gateways: dict[str, tuple[procs.Process, loadgen.Target]] = {}
    try:
        for side in sides:
            url = ledger.replace("{n}", side.replace(" ", "-"))
            src = baseline_src if side == "baseline" else None
            proc, port = procs.start_modelyard(
                url, upstream_port, workdir, cores=cores, src=src, name=f"ab-{side}"
            )
            gateways[side] = (proc, loadgen.Target(side, port))
            await loadgen.closed_loop(gateways[side][1], concurrency, 2.0)  # warm-up
        for _ in range(rounds):
            for side, (proc, target) in gateways.items():
                await loadgen.settle(target)
                before = proc.cpu()
                ok, _ = await loadgen.closed_loop(target, concurrency, round_s)
                sides[side].append(1000 * (proc.cpu() - before) / max(1, ok))
    finally:
        for proc, target in gateways.values():
            target.close()
            proc.stop()
    base = statistics.median(sides["baseline"])
    this = statistics.median(sides["this checkout"])
    lines = [f"A/B CPU per request ({ledger.split(':')[0]} ledger, {rounds} rounds alternating):"]
    for side, values in sides.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"  {side}: median {statistics.median(values):.2f} ms ({shown})")
    lines.append(f"  this checkout / baseline = {this / base:.2f}")
    return "\n".join(lines)
