"""An owned specialist on Banking77: accuracy, calibration, speed, memory and cost per
1,000 decisions against mainstream API models at list price.

    python bench/specialist.py                         # train on train.csv, test on test.csv
    python bench/specialist.py --artifact DIR          # reuse a trained specialist
    python bench/specialist.py --head mlp --out /tmp/b77 --json bench/specialist.json

What it does, all through modelyard's own code:

1. trains `specialist/banking77` on `train.csv` (MiniLM sentence vectors, logistic
   head, temperature fitted on a 10% held-out slice) and times it; peak RSS;
2. evaluates on the full `test.csv`: accuracy, macro-F1, ECE before/after calibration,
   accuracy when answering 95% / 90% of requests and escalating the rest (PNG written);
3. in a fresh process that imports no training library: loads the artifact as a
   server would, then times single requests end to end through the `specialist`
   provider's `complete()` (an OpenAI chat request in, the label out) with a cold
   vector cache (every text new) and a warm one, the same through the whole Engine
   (router + executor + in-memory ledger, built-in stack with no API keys), and
   requests/s at a given concurrency; RSS after serving;
4. prices the prompt a user would send an API model for the same decision (an
   instruction, the 77 intent names, the query; counted with modelyard's token
   estimator) at each model's list price from the built-in stack's catalog, and the
   specialist's cost as the box's hourly price divided by its measured throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
# The same place the tests look: $MODELYARD_SHARED_DATA, else ../shared/data.
SHARED = os.environ.get("MODELYARD_SHARED_DATA")
DATA = (Path(SHARED) if SHARED else REPO.parent / "shared" / "data") / "banking77"
OOS = "__out_of_scope__"
NAME = "banking77"
# A 2-vCPU on-demand cloud VM lists at roughly $0.05-0.10 per hour (e.g. AWS
# c7i.large $0.0893/h in us-east-1, 2025); the box is an assumption, so it is a flag.
BOX_USD_PER_HOUR = 0.09
API_MODELS = (
    "openai/gpt-5-nano",
    "openai/gpt-5-mini",
    "anthropic/claude-haiku-4-5",
    "google/gemini-2.5-flash-lite",
)
INSTRUCTION = (
    "You are the intent classifier of an online bank's customer support. Classify the "
    "customer's message into exactly one of the intents below and answer with the "
    "intent name only, nothing else.\n\nIntents:\n"
)
console = Console(width=120)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(args: argparse.Namespace, out: Path, encoder: Any) -> tuple[Path, dict[str, Any]]:
    """Train on train.csv; return the version folder and the training figures."""
    from modelyard.specialists.artifact import save_specialist
    from modelyard.specialists.data import check_lengths, load_labelled
    from modelyard.specialists.train import TrainOptions, train_specialist

    data = load_labelled(args.data / "train.csv", label="category")
    load_s = args.encoder_load_s
    check_lengths(data, encoder, truncate=False)
    options = TrainOptions(head=args.head, c=args.c, seed=args.seed)
    t1 = time.perf_counter()
    trained = train_specialist(
        data, encoder, encoder_name=args.encoder, name=NAME, task=NAME, options=options
    )
    seconds = time.perf_counter() - t1
    folder = save_specialist(out / NAME, trained.manifest, trained.weights)
    figures = {
        "train_rows": len(data),
        "encoder_load_s": round(load_s, 2),
        "train_s": round(seconds, 1),
        "train_peak_rss_mb": round(rss_mb()),
        "temperature": trained.manifest.temperature,
        "threshold": trained.manifest.threshold,
        "heldout": trained.manifest.metrics,
    }
    return folder, figures


def evaluate(folder: Path, data_dir: Path, encoder: Any) -> dict[str, Any]:
    from modelyard.specialists.artifact import load_specialist
    from modelyard.specialists.data import load_labelled
    from modelyard.specialists.evaluate import evaluate as run_eval
    from modelyard.specialists.evaluate import plot

    test = load_labelled(data_dir / "test.csv", label="category")
    report = run_eval(load_specialist(folder, encoder=encoder), test)
    png = plot(report, folder / "eval.png")
    at = {k: {"threshold": p.threshold, "coverage": p.coverage, "accuracy": p.accuracy}
          for k, p in report.at_coverage.items()}  # fmt: skip
    return {
        "test_rows": report.rows,
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "ece": report.ece,
        "ece_uncalibrated": report.ece_uncalibrated,
        "at_coverage": at,
        "threshold": report.threshold,
        "coverage_at_threshold": report.coverage_at_threshold,
        "accuracy_at_threshold": report.accuracy_at_threshold,
        "plot": str(png),
    }


def held_out_intents(labels: Sequence[str], share: float, seed: int) -> set[str]:
    """A seeded `share` of the intents, held out entirely as out-of-scope."""
    import numpy as np

    intents = sorted(set(labels))
    rng = np.random.default_rng(seed)
    return {str(x) for x in rng.choice(intents, round(len(intents) * share), replace=False)}


def oos_figures(args: argparse.Namespace, folder: Path, encoder: Any) -> dict[str, Any]:
    """The held-out-intents protocol: train on the other intents, test on the whole
    test set (held-out intents relabelled out-of-scope); compare in-scope accuracy
    with the full-label-set specialist at `folder` on the same in-scope queries."""
    from modelyard.specialists.artifact import load_specialist
    from modelyard.specialists.data import LabelledData, load_labelled
    from modelyard.specialists.evaluate import evaluate as run_eval
    from modelyard.specialists.train import TrainOptions, train_specialist

    train_rows = load_labelled(args.data / "train.csv", label="category")
    test = load_labelled(args.data / "test.csv", label="category")
    held = held_out_intents(train_rows.labels, args.oos_share, args.oos_seed)
    keep = [i for i, label in enumerate(train_rows.labels) if label not in held]
    options = TrainOptions(head=args.head, c=args.c, seed=args.seed)
    t0 = time.perf_counter()
    part = train_specialist(
        train_rows.subset(keep), encoder, encoder_name=args.encoder, name="b77-oos",
        task=NAME, options=options,
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    relabelled = LabelledData(
        test.texts, tuple(OOS if lab in held else lab for lab in test.labels), test.lines,
        test.source,
    )  # fmt: skip
    report = run_eval(part.model, relabelled, oos_label=OOS)
    in_scope = test.subset([i for i, lab in enumerate(test.labels) if lab not in held])
    full = run_eval(load_specialist(folder, encoder=encoder), in_scope)
    assert report.oos is not None
    assert part.manifest.oos is not None
    info = part.manifest.oos
    return {
        "held_out_intents": len(held),
        "seed": args.oos_seed,
        "train_rows": len(keep),
        "train_s": round(train_s, 1),
        "test_in_scope": report.rows,
        "test_out_of_scope": report.oos.rows,
        "in_scope_accuracy": report.accuracy,
        "full_label_accuracy_same_rows": full.accuracy,
        "auroc": report.oos.auroc,
        "oos_threshold": info.threshold,
        "threshold_method": f"{info.method}: {info.detail}",
        "expected_oos_recall": info.expected_oos_recall,
        "expected_inscope_answer_rate": info.expected_inscope_answer_rate,
        "cv_auroc": info.auroc,
        "oos_recall": report.oos.oos_recall,
        "oos_escalated": report.oos.oos_escalated,
        "inscope_escalated": report.oos.inscope_escalated,
        "answered_accuracy": report.oos.answered_accuracy,
        "confidence_threshold": report.threshold,
    }


def oos_report(f: dict[str, Any]) -> None:
    table = Table(
        title=f"out-of-scope: {f['held_out_intents']} of 77 intents held out (seed {f['seed']}); "
        f"{f['test_in_scope']:,} in-scope / {f['test_out_of_scope']:,} out-of-scope test queries"
    )
    table.add_column("metric")
    table.add_column("value")
    a = f["auroc"]
    rows = [
        ("in-scope accuracy / full-label run on the same queries (within 1 pt)",
         f"{f['in_scope_accuracy']:.4f} / {f['full_label_accuracy_same_rows']:.4f}"),
        ("AUROC confidence / kNN / Mahalanobis / combined (target >= 0.95)",
         f"{a['confidence']:.4f} / {a.get('knn', float('nan')):.4f} / "
         f"{a.get('mahalanobis', float('nan')):.4f} / {a.get('combined', float('nan')):.4f}"),
        ("out-of-scope threshold (how chosen)",
         f"{f['oos_threshold']:.3f} ({f['threshold_method']})"),
        ("OOS recall at the threshold / escalated for any reason (target >= 80%)",
         f"{f['oos_recall']:.1%} / {f['oos_escalated']:.1%}"),
        ("in-scope escalated, any reason (target <= 10%)", f"{f['inscope_escalated']:.1%}"),
        ("accuracy on what it answers (answered OOS count wrong)", f"{f['answered_accuracy']:.4f}"),
        ("expected from training: OOS recall / in-scope answer rate",
         f"{f['expected_oos_recall']:.1%} / {f['expected_inscope_answer_rate']:.1%}"),
        ("training time, 75% of intents (vectors cached)", f"{f['train_s']:.1f} s"),
    ]  # fmt: skip
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


# ---------------------------------------------------------------------------
# Serving, in a fresh process (`--serve FOLDER`)
# ---------------------------------------------------------------------------


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
    }


async def serve_figures(folder: Path, texts: list[str], n: int, concurrency: int) -> dict[str, Any]:
    """Load like a server, then time single requests and a concurrent burst."""
    import anyio

    from modelyard.embeddings import CachedEncoder, load_encoder
    from modelyard.errors import LowConfidenceError
    from modelyard.specialists.artifact import load_specialist
    from modelyard.specialists.manifest import read_manifest
    from modelyard.specialists.provider import SpecialistProvider
    from modelyard.specialists.settings import SpecialistSettings
    from modelyard.types import ChatRequest

    t0 = time.perf_counter()
    shared = load_encoder(read_manifest(folder).encoder.name)
    inner = getattr(shared, "inner", shared)

    def fresh() -> SpecialistProvider:  # a provider with an empty vector cache
        model = load_specialist(folder, encoder=CachedEncoder(inner))
        return SpecialistProvider(SpecialistSettings(folder), model=model)

    provider = fresh()
    provider.warm()
    load_s = time.perf_counter() - t0
    requests = [
        ChatRequest.model_validate({"messages": [{"role": "user", "content": t}]}) for t in texts
    ]

    async def one(p: SpecialistProvider, req: ChatRequest) -> float:
        start = time.perf_counter()
        with contextlib.suppress(LowConfidenceError):  # an escalation is an answer too
            await p.complete(req, NAME)
        return (time.perf_counter() - start) * 1000

    await one(provider, requests[-1])  # first call: thread pool start-up
    cold = [await one(provider, r) for r in requests[:n]]
    warm = [await one(provider, r) for r in requests[:n]]
    burst = fresh()
    burst.warm()
    limiter = anyio.Semaphore(concurrency)

    async def limited(req: ChatRequest) -> None:
        async with limiter:
            await one(burst, req)

    t1 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for req in requests:
            tg.start_soon(limited, req)
    burst_s = time.perf_counter() - t1
    engine = await engine_latency(folder, requests[:n])
    oos = oos_latency(provider.warm(), texts[:n])
    return {
        "oos_score": oos,
        "load_s": round(load_s, 2),
        "cold": percentiles(cold),
        "warm": percentiles(warm),
        "engine": engine,
        "requests_per_s": len(requests) / burst_s,
        "concurrency": concurrency,
        "burst_requests": len(requests),
        "serve_rss_mb": round(rss_mb()),
        "training_libs_loaded": sorted(
            m for m in ("sklearn", "scipy", "matplotlib", "torch") if m in sys.modules
        ),
    }


def oos_latency(model: Any, texts: list[str]) -> dict[str, float]:
    """The out-of-scope score alone (kNN over the training vectors, Mahalanobis,
    combiner) per single request, its vector already computed: what it adds."""
    if model.oos is None:
        return {}
    vectors = model.encoder.encode(texts)
    ms = []
    for v in vectors:
        one = v[None, :]
        start = time.perf_counter()
        model.oos.scores(one, model.probabilities(one).max(axis=1))
        ms.append((time.perf_counter() - start) * 1000)
    return percentiles(ms)


async def engine_latency(folder: Path, requests: Sequence[Any]) -> dict[str, float]:
    """The whole request path: built-in stack (no API keys) + this specialist, router,
    executor, in-memory ledger. With no other model enabled, a low-confidence answer
    is returned as is (escalation has nowhere to go)."""
    from modelyard.catalog.defaults import default_config
    from modelyard.config import SpecialistConfig
    from modelyard.engine import build_engine
    from modelyard.ledger import InMemoryLedger
    from modelyard.specialists.manifest import read_manifest

    task = read_manifest(folder).task
    spec = SpecialistConfig(artifact=str(folder))
    config = default_config().model_copy(update={"specialists": {NAME: spec}})
    ledger = InMemoryLedger()
    await ledger.open()
    engine = build_engine(config, env={}, ledger=ledger)
    tagged = [r.model_copy(update={"modelyard": r.modelyard.model_copy(update={"task": task})})
              for r in requests]  # fmt: skip
    await engine.complete(tagged[-1])
    ms = []
    for req in tagged:
        start = time.perf_counter()
        _, outcome = await engine.complete(req)
        ms.append((time.perf_counter() - start) * 1000)
        assert outcome.card.id == f"specialist/{NAME}"
    return percentiles(ms)


def serve_in_subprocess(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--serve", str(folder), "--data", str(args.data)]
    cmd += ["--latency-requests", str(args.latency_requests)]
    cmd += ["--concurrency", str(args.concurrency)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------------
# Cost per 1,000 decisions
# ---------------------------------------------------------------------------


def api_costs(data_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """List-price cost per 1,000 test queries for each API model, with the prompt a
    user would need (instruction + the 77 intent names + the query)."""
    from modelyard.catalog.catalog import build_catalog
    from modelyard.catalog.defaults import default_config
    from modelyard.catalog.prices import library_prices
    from modelyard.catalog.tokens import count_text, estimate_prompt_tokens, tokenizer_name
    from modelyard.specialists.data import load_labelled
    from modelyard.types import ChatRequest

    test = load_labelled(data_dir / "test.csv", label="category")
    labels = json.loads((data_dir / "categories.json").read_text())
    system = INSTRUCTION + "\n".join(labels)
    catalog = build_catalog(default_config(), {})
    priced = {m: (catalog.cards[m].prices, catalog.cards[m].family) for m in API_MODELS}
    mini = library_prices("gpt-4o-mini", "openai")
    if mini is not None:
        priced["openai/gpt-4o-mini (genai-prices)"] = (mini, "openai")
    totals = {m: Decimal(0) for m in priced}
    prompt_tokens: list[int] = []
    for text, label in zip(test.texts, test.labels, strict=True):
        req = ChatRequest.model_validate(
            {"messages": [{"role": "system", "content": system}, {"role": "user", "content": text}]}
        )
        out = count_text(label) + 1
        prompt_tokens.append(estimate_prompt_tokens(req))
        for model, (prices, family) in priced.items():
            totals[model] += prices.estimate(estimate_prompt_tokens(req, family), out)
    per_1000 = {
        m: {
            "usd_per_1000": float(total * 1000 / len(test)),
            "input_per_mtok": str(priced[m][0].input),
            "output_per_mtok": str(priced[m][0].output),
        }
        for m, total in totals.items()
    }
    tokens = {
        "prompt_tokens_mean": sum(prompt_tokens) / len(prompt_tokens),
        "system_tokens": count_text(system),
        "tokenizer": tokenizer_name(),
    }
    return per_1000, tokens


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def report(results: dict[str, Any], box_usd_per_hour: float) -> None:
    tr, ev, sv = results["training"], results["test"], results["serving"]
    box_per_1000 = box_usd_per_hour / 3600 * 1000 / sv["requests_per_s"]
    results["specialist_usd_per_1000"] = box_per_1000
    table = Table(title=f"specialist/{NAME} on Banking77 ({ev['test_rows']:,} test queries)")
    table.add_column("metric")
    table.add_column("value")
    a95, a90 = ev["at_coverage"].get("0.95"), ev["at_coverage"].get("0.90")
    rows = [
        ("accuracy (full test set)", f"{ev['accuracy']:.4f}"),
        ("macro-F1", f"{ev['macro_f1']:.4f}"),
        ("ECE calibrated / uncalibrated", f"{ev['ece']:.4f} / {ev['ece_uncalibrated']:.4f}"),
        ("accuracy answering 95% (escalate 5%)", _cov(a95)),
        ("accuracy answering 90% (escalate 10%)", _cov(a90)),
        ("default threshold (held-out target 0.95)",
         f"{ev['threshold']:.3f}: {ev['coverage_at_threshold']:.1%} answered, "
         f"{ev['accuracy_at_threshold']:.4f} right"),
        ("training time (encode + fit + calibrate)",
         f"{tr['train_s']:.1f} s for {tr['train_rows']:,} rows (+{tr['encoder_load_s']} s load)"),
        ("training peak RSS", f"{tr['train_peak_rss_mb']} MB"),
        ("latency via provider, cold cache p50 / p99",
         f"{sv['cold']['p50_ms']:.2f} / {sv['cold']['p99_ms']:.2f} ms"),
        ("latency via provider, warm cache p50 / p99",
         f"{sv['warm']['p50_ms']:.2f} / {sv['warm']['p99_ms']:.2f} ms"),
        ("latency via Engine (router+executor+ledger) p50 / p99",
         f"{sv['engine']['p50_ms']:.2f} / {sv['engine']['p99_ms']:.2f} ms"),
        ("out-of-scope score alone p50 / p99 (in the figures above)",
         f"{sv['oos_score'].get('p50_ms', float('nan')):.2f} / "
         f"{sv['oos_score'].get('p99_ms', float('nan')):.2f} ms"),
        ("requests/s", f"{sv['requests_per_s']:.0f} at concurrency {sv['concurrency']}"),
        ("serving process RSS / load time", f"{sv['serve_rss_mb']} MB / {sv['load_s']} s"),
        ("training libraries loaded when serving", ", ".join(sv["training_libs_loaded"]) or "none"),
        ("specialist $ per 1,000 decisions",
         f"${box_per_1000:.5f} (box ${box_usd_per_hour}/h at the measured requests/s)"),
    ]  # fmt: skip
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    tokens = results["prompt"]["prompt_tokens_mean"]
    cost = Table(title=f"API list price, $ per 1,000 decisions (prompt ~{tokens:.0f} tokens)")
    for col in (
        "model",
        "$/Mtok in / out",
        "$ per 1,000",
        "x specialist",
        "specialist + API on 10% escalated",
    ):
        cost.add_column(col)
    for model, c in results["api"].items():
        usd = c["usd_per_1000"]
        cost.add_row(
            model,
            f"{c['input_per_mtok']} / {c['output_per_mtok']}",
            f"${usd:.4f}",
            f"{usd / box_per_1000:,.0f}x",
            f"${box_per_1000 + 0.10 * usd:.4f}",
        )
    console.print(cost)


def report_test(results: dict[str, Any]) -> None:
    """The accuracy and calibration lines alone (for `--oos-only`)."""
    ev, tr = results["test"], results["training"]
    console.print(
        f"full label set: accuracy {ev['accuracy']:.4f}, ECE {ev['ece']:.4f} "
        f"(uncalibrated {ev['ece_uncalibrated']:.4f}), T {tr.get('temperature', '?')}, "
        f"threshold {ev['threshold']:.3f}: {ev['coverage_at_threshold']:.1%} answered, "
        f"{ev['accuracy_at_threshold']:.4f} right; train {tr['train_s']} s"
    )


def _cov(point: dict[str, float] | None) -> str:
    if point is None:
        return "-"
    return f"{point['accuracy']:.4f} (threshold {point['threshold']:.3f}, {point['coverage']:.1%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--encoder", default="minilm-l6-v2")
    parser.add_argument("--head", choices=("linear", "mlp"), default="linear")
    parser.add_argument("--c", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--artifact", type=Path, help="reuse this trained specialist")
    parser.add_argument("--out", type=Path, help="where to save it (default: a temp dir)")
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--box-usd-per-hour", type=float, default=BOX_USD_PER_HOUR)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--oos-share", type=float, default=0.25, help="intents held out as OOS")
    parser.add_argument("--oos-seed", type=int, default=0)
    parser.add_argument("--oos-only", action="store_true", help="skip serving and API costs")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:  # the child process of step 3
        import anyio

        from modelyard.specialists.data import load_labelled

        texts = list(load_labelled(args.data / "test.csv", label="category").texts)
        figures = anyio.run(
            serve_figures, args.serve, texts, args.latency_requests, args.concurrency
        )
        print(json.dumps(figures))
        return
    console.print(f"{os.cpu_count()} CPUs, python {platform.python_version()}")
    out = args.out or Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    results: dict[str, Any] = {}
    from modelyard.embeddings import CachedEncoder, load_encoder

    t0 = time.perf_counter()
    # One vector cache for the full-label run, the held-out-intents run and the test.
    encoder = CachedEncoder(load_encoder(args.encoder))
    args.encoder_load_s = time.perf_counter() - t0
    if args.artifact is None:
        console.print(f"training on {args.data / 'train.csv'} ...")
        folder, results["training"] = train(args, out, encoder)
    else:
        from modelyard.specialists.manifest import read_manifest, resolve

        folder = resolve(args.artifact)
        m = read_manifest(folder)
        results["training"] = {"train_rows": m.training.rows, "train_s": m.training.seconds,
                               "encoder_load_s": "?", "train_peak_rss_mb": "?"}  # fmt: skip
    console.print(f"artifact {folder}; evaluating on test.csv ...")
    results["test"] = evaluate(folder, args.data, encoder)
    console.print("held-out intents as out-of-scope ...")
    results["oos"] = oos_figures(args, folder, encoder)
    if args.oos_only:
        report_test(results)
        oos_report(results["oos"])
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        return
    console.print("serving in a fresh process ...")
    results["serving"] = serve_in_subprocess(folder, args)
    results["api"], results["prompt"] = api_costs(args.data)
    report(results, args.box_usd_per_hour)
    oos_report(results["oos"])
    console.print(f"plot: {results['test']['plot']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
