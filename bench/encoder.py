"""What a sentence vector costs: the MiniLM encoder on this CPU.

    python bench/encoder.py                      # fp32 with the default thread count
    python bench/encoder.py --int8 --threads 1,2 # fp32 and int8, 1 and 2 threads each

Cold load = build the ONNX graph into an empty cache folder (torch export in a child
process; int8: quantising the fp32 graph) + open the session. Warm load = open it
again with the graph present: in this process, and in a fresh process with imports
included (that process also reports its peak RSS after loading and encoding one text:
the encoder's real memory cost, no torch). Per-text latency is one `encode([text])`
call on a short (~15 tokens) and a long (~190 tokens) text without the vector cache;
the setups are timed in alternating rounds so background load hits them alike.
"cached hit" is the same short call through `CachedEncoder` after the first.
Throughput is `encode(texts)` on Banking77 test queries and AlpacaEval prompts when
../shared/data has them, else on generated sentences. With `--int8`, the cosine of
each int8 vector to its fp32 vector on those texts.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from modelyard.embeddings import CachedEncoder
from modelyard.embeddings.minilm import MiniLMEncoder, default_threads
from modelyard.embeddings.onnx_files import Precision

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SHORT = "How do I reset my password if I forgot the old one?"
LONG = " ".join(["The quick brown fox jumps over the lazy dog while the cat watches."] * 13)
ROUNDS = 5

Setup = tuple[Precision, int]
Figures = dict[str, dict[str, str]]  # figure -> setup label -> value


def label(setup: Setup) -> str:
    return f"{setup[0]}, {setup[1]} thr"


def ms(samples_s: Sequence[float]) -> str:
    values = np.asarray(samples_s) * 1e3
    return f"{np.percentile(values, 50):.2f} / {np.percentile(values, 99):.2f}"


def interleaved(calls: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """`reps` timed calls of each, in ROUNDS alternating rounds, after a warm-up."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(3):
            call()
    for _ in range(ROUNDS):
        for name, call in calls.items():
            for _ in range(max(1, reps // ROUNDS)):
                start = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - start)
    return samples


def corpora(limit: int) -> dict[str, list[str]]:
    """Short and longer real texts when the shared data is there, else generated ones."""
    banking = DATA / "banking77" / "test.csv"
    alpaca = DATA / "alpacaeval-routing" / "outcomes.jsonl.gz"
    if banking.is_file() and alpaca.is_file():
        with banking.open(newline="") as f:
            short = [row["text"] for row in csv.DictReader(f)][:limit]
        prompts: dict[int, str] = {}
        with gzip.open(alpaca, "rt") as f:
            for line in f:
                row = json.loads(line)
                prompts.setdefault(row["prompt_id"], row["prompt"])
        return {"banking77": short, "alpacaeval": list(prompts.values())[:limit]}
    words = ["card", "refund", "transfer", "account", "balance", "payment", "limit", "fee"]
    rng = np.random.default_rng(0)
    return {"generated": [" ".join(rng.choice(words, size=12)) for _ in range(limit)]}


def fresh_process(cache_dir: Path, setup: Setup) -> tuple[float, float]:
    """Seconds to import and open the encoder in a new process, and its peak RSS (MB)."""
    code = (
        "import resource, time; t = time.perf_counter()\n"
        "from modelyard.embeddings.minilm import MiniLMEncoder\n"
        f"e = MiniLMEncoder(cache_dir={str(cache_dir)!r}, precision={setup[0]!r},"
        f" threads={setup[1]})\n"
        "print(time.perf_counter() - t); e.encode(['warm up the session'])\n"
        # VmHWM, not ru_maxrss: the latter keeps the forked parent's peak across exec.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "print(int(hwm[0].split()[1]) / 1024 if hwm else"
        " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, rss = done.stdout.split()[-2:]
    return float(seconds), float(rss)


def load_all(setups: list[Setup], cache_dir: Path, figures: Figures) -> dict[str, MiniLMEncoder]:
    encoders: dict[str, MiniLMEncoder] = {}
    for setup in setups:
        name = label(setup)
        start = time.perf_counter()
        encoder = MiniLMEncoder(cache_dir=cache_dir, precision=setup[0], threads=setup[1])
        took = time.perf_counter() - start
        kind = "cold (built graph)" if encoder.built else "warm"
        figures.setdefault("load in this process, s", {})[name] = f"{took:.2f} {kind}"
        seconds, rss = fresh_process(cache_dir, setup)
        figures.setdefault("warm load in a new process (imports incl.), s", {})[name] = (
            f"{seconds:.2f}"
        )
        figures.setdefault("peak RSS of that process, MB", {})[name] = f"{rss:.0f}"
        encoders[name] = encoder
    return encoders


def latency(encoders: dict[str, MiniLMEncoder], reps: int, figures: Figures) -> None:
    for kind, text, count in (("short", SHORT, reps), ("long", LONG, max(25, reps // 4))):
        tokens = next(iter(encoders.values())).token_lengths([text])[0]
        calls = {name: _bound(e, text) for name, e in encoders.items()}
        for name, samples in interleaved(calls, count).items():
            figures.setdefault(f"one {kind} text ({tokens} tok) p50 / p99, ms", {})[name] = ms(
                samples
            )
    for name, encoder in encoders.items():
        cached = CachedEncoder(encoder)
        hits = interleaved({name: _bound(cached, SHORT)}, reps * 5)[name]
        us = np.asarray(hits) * 1e6
        figures.setdefault("cached hit p50 / p99, µs", {})[name] = (
            f"{np.percentile(us, 50):.0f} / {np.percentile(us, 99):.0f}"
        )


def _bound(encoder: MiniLMEncoder | CachedEncoder, text: str) -> Callable[[], object]:
    return lambda: encoder.encode([text])


def throughput(
    encoders: dict[str, MiniLMEncoder], limit: int, figures: Figures
) -> dict[str, dict[str, np.ndarray]]:
    vectors: dict[str, dict[str, np.ndarray]] = {}
    for corpus, texts in corpora(limit).items():
        tokens = statistics.fmean(next(iter(encoders.values())).token_lengths(texts))
        key = f"batch throughput, {len(texts)} {corpus} texts (mean {tokens:.0f} tok), texts/s"
        for name, encoder in encoders.items():
            encoder.encode(texts[:32])
            start = time.perf_counter()
            vectors.setdefault(name, {})[corpus] = encoder.encode(texts)
            figures.setdefault(key, {})[name] = f"{len(texts) / (time.perf_counter() - start):.0f}"
    return vectors


def agreement(
    setups: list[Setup], vectors: dict[str, dict[str, np.ndarray]], figures: Figures
) -> None:
    base = next((label(s) for s in setups if s[0] == "fp32"), None)
    for setup in setups:
        name = label(setup)
        if base is None or setup[0] == "fp32":
            continue
        for corpus, reference in vectors[base].items():
            cosines = np.sum(reference * vectors[name][corpus], axis=1)
            figures.setdefault(f"cosine to fp32 on {corpus}, mean / min", {})[name] = (
                f"{cosines.mean():.4f} / {cosines.min():.4f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", default=str(default_threads()), help="e.g. 2 or 1,2")
    parser.add_argument("--int8", action="store_true", help="also measure the int8 graph")
    parser.add_argument("--texts", type=int, default=1024, help="texts per throughput corpus")
    parser.add_argument("--reps", type=int, default=200, help="timed calls per short-text figure")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    precisions: list[Precision] = ["fp32", "int8"] if args.int8 else ["fp32"]
    setups = [(p, t) for p in precisions for t in threads]
    figures: Figures = {}
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as folder:
        encoders = load_all(setups, Path(folder), figures)
        latency(encoders, args.reps, figures)
        vectors = throughput(encoders, args.texts, figures)
        agreement(setups, vectors, figures)
    build_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    table = Table(
        title=f"all-MiniLM-L6-v2 on ONNX Runtime (CPU); graph build peak RSS {build_rss:.0f} MB"
    )
    table.add_column("figure")
    for setup in setups:
        table.add_column(label(setup), justify="right")
    for figure, values in figures.items():
        table.add_row(figure, *(values.get(label(s), "") for s in setups))
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
