"""Learned routing on real outcome data, and what a routing decision costs.

    python bench/routing.py                       # everything (~ a few minutes on 2 cores)
    python bench/routing.py --skip-latency        # only the replay evaluation
    python bench/routing.py --skip-eval --routers knn

Part 1 (quality and cost): `modelyard.evaluation.run_evaluations` on AlpacaEval, once
with all 17 models and once without the FuseChat models (the dataset's README warns
they were tuned on data close to the benchmark). Every figure is measured on held-out
prompts: 5-fold in-distribution (each prompt tested once, by a router that never saw
it) and cross-task (leave one k-means topic cluster out). Every request goes through
the server's Engine over a ReplayProvider, and the numbers come from the ledger rows.

Part 2 (decision cost): each router kind trained on 80% of the prompts and saved as
an artifact; a fresh process (like a server) loads the encoder and the artifact and
times `Engine.route` — embedding, scoring and planning — on the other 20%: first with
an empty vector cache (every prompt new: the embedding is computed), then again (the
vectors come from the cache). Memory is the fresh process's RSS growth.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from modelyard.evaluation.cli import DEFAULT_PAIRS
from modelyard.evaluation.evaluate import Settings
from modelyard.evaluation.report import print_summary, write_all
from modelyard.evaluation.run import Study, run_evaluations
from modelyard.learned.defaults import SEARCH_FOLDS

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "alpacaeval-routing"
console = Console(width=160)
VARIANTS = {"all-models": (), "without-fusechat": ("FuseChat*",)}


# --------------------------------------------------------------------------- part 1


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant, exclude in VARIANTS.items():
        t0 = time.perf_counter()
        study = Study(
            data=args.data,
            exclude=exclude,
            folds=args.folds,
            encoder=args.encoder,
            settings=Settings(
                routers=tuple(args.routers.split(",")),
                seed=args.seed,
                knobs=args.knobs,
                workers=args.workers,
                named_pairs=DEFAULT_PAIRS,
            ),
        )
        results = run_evaluations(study)
        console.print(f"[bold]{variant}[/bold]: {time.perf_counter() - t0:.0f} s")
        for ev in results["evaluations"]:
            print_summary(ev, console)
        write_all(results, args.out / variant)
        out[variant] = results
    return out


def headline(results: dict[str, Any]) -> Table:
    """The issue's targets, per variant, evaluation and router (utility family)."""
    table = Table(title="targets (held-out prompts)", title_justify="left")
    cols = (
        "variant / evaluation",
        "router",
        "best single q / $1k",
        "router q / $1k",
        "cost vs best",
        "AIQ / oracle",
        "APGR",
        "CPT(50%)",
        "APGR gpt4/mixtral",
        "CPT(50%) gpt4/mixtral",
    )
    for col in cols:
        table.add_column(col, justify="right")
    for variant, res in results.items():
        for ev in res["evaluations"]:
            for router, r in ev["routers"].items():
                table.add_row(*headline_row(variant, ev, router, r))
    return table


def headline_row(variant: str, ev: dict[str, Any], router: str, r: dict[str, Any]) -> list[str]:
    fams = r["families"]
    sel = fams["utility"]["selected"]
    auto = fams.get("threshold", {})
    named = next((f for k, f in fams.items() if k.startswith("threshold:")), {})
    return [
        f"{variant} / {ev['kind']}",
        router,
        f"{sel['best_single_quality']:.3f} / {sel['best_single_cost_per_1k']:.3f}",
        f"{sel['quality']:.3f} / {sel['cost_per_1k']:.3f}",
        f"{100 * sel['cost_share_of_best']:.0f}%",
        f"{100 * fams['utility']['aiq_vs_oracle']:.0f}%",
        _num(auto.get("apgr")),
        _share(auto.get("cpt", {}).get("50")),
        _num(named.get("apgr")),
        _share(named.get("cpt", {}).get("50")),
    ]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


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
    policy = {"auto": {"type": "utility", "lambda_cost": 1000.0, "mu_latency": 0.0}}

    async def timed() -> dict[str, Any]:
        async with ReplayHarness(data, policy, scorer=scorer, memo=False) as harness:
            requests = [harness.request(r, "auto") for r in rows]
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

    data = load_outcomes(args.data)
    split = kfold(len(data), 1, args.seed)[0]
    encoder = load_encoder(args.encoder)
    out: dict[str, Any] = {}
    ctx = mp.get_context("spawn")
    for kind in args.routers.split(","):
        t0 = time.perf_counter()
        scorer = train_scorer(
            kind,  # type: ignore[arg-type]
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
                target=serve_and_time, args=(tmp, str(args.data), split.test.tolist(), queue)
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
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--knobs", type=int, default=16)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--routers", default="knn,mlp,mf")
    parser.add_argument("--encoder", default="minilm-l6-v2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "routing")
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    console.print(f"{os.cpu_count()} CPUs, python {platform.python_version()}; {args.data}")
    t0 = time.perf_counter()
    record: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if not args.skip_latency:
        record["decision_cost"] = decision_cost(args)
        console.print(latency_table(record["decision_cost"]))
    if not args.skip_eval:
        results = evaluate(args)
        console.print(headline(results))
        record["headline"] = {v: r["meta"] for v, r in results.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(record, indent=1, default=str))
    console.print(f"total {time.perf_counter() - t0:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
