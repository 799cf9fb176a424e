"""Learned routing on real outcome data, and what a routing decision costs.

    python bench/routing.py                              # everything
    python bench/routing.py --datasets mmlu-pro,gsm8k --skip-latency
    python bench/routing.py --skip-eval --routers knn

Part 1 (quality and cost): `modelyard.evaluation.run_evaluations` on each dataset in
`../shared/data` (5-fold: each prompt tested once, by routers that never saw it), then
cross-dataset (train on all of one, test on all of another, over the models they
share by name or family). Every router is swept over its knob; the operating points
it reports were replayed prompt by prompt through the server's Engine over a
ReplayProvider and read back from the ledger. Learned routers (knn, mlp, mf) are set
against the baselines (per-model mean, per-category mean, random mix) with paired
bootstrap intervals over the test prompts.

Part 2 (decision cost): each router trained on 80% of a dataset's prompts and saved
as an artifact; a fresh process (like a server) loads the encoder and the artifact
and times `Engine.route` for the policy it serves (a learned `utility` policy, checked
on every decision) on the other 20%: first with an empty vector cache (every prompt
new: the embedding is computed), then again (vectors from the cache). Memory is the
fresh process's RSS growth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from modelyard.evaluation.cli import DEFAULT_PAIRS
from modelyard.evaluation.encoding import default_vector_cache
from modelyard.evaluation.evaluate import Settings
from modelyard.evaluation.harness import derive_prices
from modelyard.evaluation.report import print_summary, write_all
from modelyard.evaluation.run import Study, run_evaluations
from modelyard.learned.defaults import SEARCH_FOLDS
from modelyard.learned.outcomes import NANO, OutcomeSet, load_outcomes

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
console = Console(width=200)
# name → (folder, models to leave out). AlpacaEval's README asks for a run without the
# FuseChat models, tuned on data close to the benchmark.
DATASETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mmlu-pro": ("mmlu-pro-routing", ()),
    "gsm8k": ("gsm8k-routing", ()),
    "math-l5": ("math-l5-routing", ()),
    "alpacaeval": ("alpacaeval-routing", ()),
    "alpacaeval-without-fusechat": ("alpacaeval-routing", ("FuseChat*",)),
}
CROSS = (
    ("mmlu-pro", "gsm8k"),
    ("gsm8k", "mmlu-pro"),
    ("mmlu-pro", "alpacaeval"),
    ("gsm8k", "alpacaeval"),
)
# Thinking models bill hidden reasoning tokens the recorded text omits (the datasets'
# READMEs): their recorded cost is a lower bound. `--thinking-x3` reruns with their
# output priced 3x.
THINKING = ("gemini-3.1-pro-preview", "o1-mini-2024-09-12", "o1-preview-2024-09-12")
# The policy part 2 serves and times; a name of its own (not `auto`, which resolves
# to the default policy, and so was never the learned one).
SERVED = "learned-utility"


# --------------------------------------------------------------------------- part 1


def thinking_output_x3(data: OutcomeSet) -> OutcomeSet:
    """`data` with the thinking models' output tokens priced three times higher (the
    output part of each recorded cost from the prices that reproduce it)."""
    prices = derive_prices(data)
    cost = data.cost_usd.copy()
    exact = dict(data.exact_cost)
    for model in [m for m in THINKING if m in data.models]:
        j = data.model_index(model)
        extra = 2 * data.output_tokens[:, j] * float(prices[model][1]) / 1e6
        cost[:, j] += extra
        for i, prompt in enumerate(data.prompts):
            exact[(prompt.id, model)] = Decimal(repr(float(cost[i, j]))).quantize(NANO)
    return dataclasses.replace(
        data, name=f"{data.name} (thinking x3)", cost_usd=cost, exact_cost=exact
    )


def _study(args: argparse.Namespace, name: str, cross: str | None = None) -> Study:
    folder, exclude = DATASETS[name]
    source: Path | OutcomeSet = SHARED / folder
    if args.thinking_x3:
        source = thinking_output_x3(load_outcomes(SHARED / folder))
    return Study(
        data=source,
        cross=SHARED / DATASETS[cross][0] if cross else None,
        exclude=exclude,
        folds=0 if cross else args.folds,
        cross_task=False,
        encoder=args.encoder,
        vector_cache=default_vector_cache(),
        settings=Settings(
            routers=tuple(args.routers.split(",")),
            seed=args.seed,
            knobs=args.knobs,
            workers=args.workers,
            named_pairs=DEFAULT_PAIRS,
        ),
    )


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    jobs: list[tuple[str, str | None]] = [(name, None) for name in args.datasets.split(",")]
    if not args.skip_cross:
        jobs += [(a, b) for a, b in CROSS]
    for name, cross in jobs:
        label = f"{name} -> {cross}" if cross else name
        t0 = time.perf_counter()
        try:
            results = run_evaluations(_study(args, name, cross))
        except ValueError as exc:  # e.g. fewer than two shared models
            console.print(f"[yellow]{label}: not evaluated: {exc}[/yellow]")
            out[label] = {"error": str(exc)}
            continue
        console.print(f"[bold]{label}[/bold]: {time.perf_counter() - t0:.0f} s")
        for ev in results["evaluations"]:
            print_summary(ev, console)
        write_all(results, args.out / label.replace(" -> ", "-to-"))
        out[label] = results
    return out


def cascade_headline(results: dict[str, Any]) -> Table:
    """Issue 10's targets: the cascade's training-side operating point on the test
    prompts, its hops, and how its curve compares with the routers and the random mix."""
    table = Table(title="agreement cascades (held-out prompts)", title_justify="left")
    cols = (
        "evaluation",
        "best single q / $1k",
        "cascade q / $1k",
        "Δq [95% CI]",
        "$ vs best",
        "matches best",
        "step 1/2/3",
        "escalated / wrong caught / right escalated",
        "ΔIBC",
        "ΔAIQ≤best vs best router",
        "ΔAIQ≤best vs random mix",
        "chosen",
    )
    for col in cols:
        table.add_column(col, justify="right")
    for label, res in results.items():
        for ev in res.get("evaluations", []):
            for family, c in ev.get("cascades", {}).items():
                if "selected" in c:
                    table.add_row(*cascade_row(f"{label} / {family}", ev, family))
    return table


def cascade_row(label: str, ev: dict[str, Any], family: str) -> list[str]:
    sel = ev["cascades"][family]["selected"]
    gap, hops, ibc = sel["quality_minus_best_interval"], sel["hops"], sel["ibc"]
    against = ev["comparisons"].get(family, {})
    routers = [b for b in against if b != "random mix" and not b.startswith("cascade")]
    best_router = (
        max(routers, key=lambda b: -against[b]["aiq_to_best_single"]["estimate"])
        if routers
        else None
    )

    def vs(base: str | None) -> str:
        if base is None:
            return "-"
        i = against[base]["aiq_to_best_single"]
        word = "better" if i["better"] else ("worse" if i["worse"] else "tie")
        return f"{i['estimate']:+.4f} {word}" + (f" ({base})" if base != "random mix" else "")

    return [
        label,
        f"{sel['best_single_quality']:.3f} / {sel['best_single_cost_per_1k']:.3f}",
        f"{sel['quality']:.3f} / {sel['cost_per_1k']:.3f}",
        f"{gap['estimate']:+.4f} [{gap['low']:+.4f}, {gap['high']:+.4f}]",
        f"{100 * sel['cost_share_of_best']:.1f}%",
        "yes" if sel["matches_best"] else "no",
        " / ".join(f"{100 * x:.0f}%" for x in hops["share_by_step"]),
        " / ".join(
            "-" if hops[k] is None else f"{100 * hops[k]:.0f}%"
            for k in ("escalation_rate", "wrong_caught", "right_escalated")
        ),
        "-" if ibc["delta_ibc_pct"] is None else f"{ibc['delta_ibc_pct']:+.0f}%",
        vs(best_router),
        vs("random mix"),
        "; ".join(sel["cascades"])[:90],
    ]


def headline(results: dict[str, Any]) -> Table:
    """Issue 9's targets per evaluation and router: the operating point chosen on the
    training side (utility family), AIQ of the router's frontier, and the paired
    bootstrap verdicts against the baselines."""
    table = Table(title="targets (held-out prompts)", title_justify="left")
    cols = (
        "evaluation",
        "router",
        "best single q / $1k",
        "chosen q / $1k",
        "Δq [95% CI]",
        "$ vs best",
        "target",
        "AIQ ÷ oracle",
        "ΔAIQ vs mean",
        "ΔAIQ vs category",
        "ΔAIQ vs random mix",
    )
    for col in cols:
        table.add_column(col, justify="right")
    for label, res in results.items():
        for ev in res.get("evaluations", []):
            for router, r in ev["routers"].items():
                table.add_row(*headline_row(label, ev, router, r))
    return table


def headline_row(label: str, ev: dict[str, Any], router: str, r: dict[str, Any]) -> list[str]:
    sel = r["families"]["utility"]["selected"]
    gap = sel["quality_minus_best_interval"]
    against = ev["comparisons"].get(router, {})

    def verdict(base: str) -> str:
        c = against.get(base)
        if c is None:
            return "-"
        i = c["aiq"]
        word = "better" if i["better"] else ("worse" if i["worse"] else "tie")
        return f"{i['estimate']:+.4f} {word}"

    return [
        f"{label} / {ev['kind']}",
        router,
        f"{sel['best_single_quality']:.3f} / {sel['best_single_cost_per_1k']:.3f}",
        f"{sel['quality']:.3f} / {sel['cost_per_1k']:.3f}",
        f"{gap['estimate']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}]",
        f"{100 * sel['cost_share_of_best']:.0f}%",
        "met" if sel["meets_target"] else "missed",
        f"{100 * r['frontier']['aiq_vs_oracle']:.1f}%",
        verdict("mean"),
        verdict("category"),
        verdict("random mix"),
    ]


# --------------------------------------------------------------------------- part 2


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentiles(ms: list[float]) -> dict[str, float]:
    arr = np.array(ms)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
    }


def serve_and_time(artifact: str, data_path: str, rows: list[int], queue: Any) -> None:
    """In a fresh process: load encoder + artifact as a server would, time Engine.route."""
    import anyio

    rss0 = _rss_mb()
    from modelyard.evaluation.harness import ReplayHarness
    from modelyard.learned.outcomes import load_outcomes
    from modelyard.learned.scorer import load_scorer

    data = load_outcomes(data_path)
    rss1 = _rss_mb()
    t0 = time.perf_counter()
    scorer = load_scorer(artifact)
    load_s = time.perf_counter() - t0
    rss2 = _rss_mb()
    policy = {SERVED: {"type": "utility", "lambda_cost": 1000.0, "mu_latency": 0.0}}

    async def timed() -> dict[str, Any]:
        async with ReplayHarness(data, policy, scorer=scorer, memo=False) as harness:
            requests = [harness.request(r, SERVED) for r in rows]
            decision = harness.engine.route(requests[0])
            # What is timed is the learned policy, scored by this artifact.
            assert (decision.policy, decision.scorer_version) == (SERVED, scorer.version)
            # A warm process: the ONNX session has run once (on a text not in the data).
            scorer.encoder.encode(["warm-up text that is not one of the prompts"])
            out = {}
            for label in ("cold cache", "warm cache"):
                ms = []
                for request in requests:
                    t = time.perf_counter()
                    harness.engine.route(request)
                    ms.append((time.perf_counter() - t) * 1000)
                out[label] = _percentiles(ms)
            return out

    timings = anyio.run(timed)
    queue.put(
        {
            "timings": timings,
            "load_s": load_s,
            "rss_base_mb": rss0,
            "rss_data_mb": rss1 - rss0,
            "rss_scorer_mb": _rss_mb() - rss1,
            "rss_after_load_mb": rss2 - rss1,
            "rss_total_mb": _rss_mb(),
        }
    )


def decision_cost(args: argparse.Namespace) -> dict[str, Any]:
    from modelyard.embeddings import load_encoder
    from modelyard.evaluation.splits import kfold
    from modelyard.learned.outcomes import load_outcomes
    from modelyard.learned.train import train_scorer

    data_path = SHARED / DATASETS[args.latency_data][0]
    data = load_outcomes(data_path)
    split = kfold(len(data), 1, args.seed)[0]
    encoder = load_encoder(args.encoder)
    out: dict[str, Any] = {}
    ctx = mp.get_context("spawn")
    for kind in [k for k in args.routers.split(",") if k in ("knn", "mlp", "mf")]:
        t0 = time.perf_counter()
        scorer = train_scorer(
            kind,
            data,
            split.train,
            encoder=encoder,
            seed=args.seed,
            folds=SEARCH_FOLDS,
            encoder_name=args.encoder,
        )
        train_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            scorer.save(tmp)
            size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
            queue = ctx.Queue()
            proc = ctx.Process(
                target=serve_and_time, args=(tmp, str(data_path), split.test.tolist(), queue)
            )
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                raise RuntimeError(f"the timing process for {kind} failed ({proc.exitcode})")
            result = queue.get()
        out[kind] = result | {
            "train_s": train_s,
            "artifact_kb": size / 1024,
            "requests": len(split.test),
        }
    return out


def latency_table(cost: dict[str, Any]) -> Table:
    table = Table(
        title="decision cost: Engine.route (embedding + scoring + planning)", title_justify="left"
    )
    for col in (
        "router",
        "cold cache p50 / p99 ms",
        "warm cache p50 / p99 ms",
        "train s",
        "artifact KB",
        "load s",
        "RSS growth MB (encoder+artifact)",
    ):
        table.add_column(col, justify="right")
    for kind, c in cost.items():
        cold, warm = c["timings"]["cold cache"], c["timings"]["warm cache"]
        table.add_row(
            kind,
            f"{cold['p50']:.2f} / {cold['p99']:.2f}",
            f"{warm['p50']:.2f} / {warm['p99']:.2f}",
            f"{c['train_s']:.1f}",
            f"{c['artifact_kb']:.0f}",
            f"{c['load_s']:.2f}",
            f"{c['rss_scorer_mb']:.0f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", default="mmlu-pro,gsm8k,alpacaeval,alpacaeval-without-fusechat"
    )
    parser.add_argument("--skip-cross", action="store_true")
    parser.add_argument("--thinking-x3", action="store_true", help="thinking models' output x3")
    parser.add_argument("--latency-data", default="mmlu-pro", choices=sorted(DATASETS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--knobs", type=int, default=16)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--routers", default="knn,mlp,mf,mean,category,cascade,cascade-learned")
    parser.add_argument("--encoder", default="minilm-l6-v2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "routing")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    console.print(f"{os.cpu_count()} CPUs, python {platform.python_version()}; {SHARED}")
    t0 = time.perf_counter()
    record: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if not args.skip_latency:
        record["decision_cost"] = decision_cost(args)
        console.print(latency_table(record["decision_cost"]))
    if not args.skip_eval:
        results = evaluate(args)
        console.print(headline(results))
        console.print(cascade_headline(results))
        record["evaluations"] = {v: r.get("meta", r) for v, r in results.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(record, indent=1, default=str))
    console.print(f"total {time.perf_counter() - t0:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
