"""`modelyard router train`: fit a quality predictor on outcome data into an artifact.

    modelyard router train --data ../shared/data/alpacaeval-routing --kind knn --out artifacts/knn

Heavy imports (NumPy, scikit-learn, torch, the encoder) happen inside the command,
so the rest of the CLI starts without the `train` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from modelyard.errors import ModelyardError
from modelyard.learned.defaults import SEARCH_FOLDS

if TYPE_CHECKING:
    from modelyard.learned.outcomes import OutcomeSet
    from modelyard.learned.scorer import LearnedScorer

app = typer.Typer(help="Train learned routers (quality predictors) from outcome data.")
console = Console()


def parse_params(items: list[str]) -> dict[str, Any]:
    """`k=10 k=20 head=logistic` → {"k": [10, 20], "head": "logistic"}."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--param")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key in out:
            previous = out[key] if isinstance(out[key], list) else [out[key]]
            out[key] = [*previous, value]
        else:
            out[key] = value
    return out


@app.command("train")
def train(
    data: Annotated[
        Path, typer.Option(help="Outcome file or dataset folder (JSONL or RouterBench).")
    ],
    out: Annotated[Path, typer.Option(help="Artifact directory to write.")],
    kind: Annotated[
        str, typer.Option(help="knn, mlp or mf; or verifier (a cascade's learned verifier).")
    ] = "knn",
    encoder: Annotated[str, typer.Option(help="Encoder name (minilm-l6-v2, hashing-256, ...).")] = (
        "minilm-l6-v2"
    ),
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl or routerbench.")] = "auto",
    exclude_models: Annotated[
        list[str] | None, typer.Option(help="Leave these models out (repeat or comma-separate).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits, folds and initialisation.")] = 0,
    folds: Annotated[
        int, typer.Option(help="Cross-validation folds for the search (as `modelyard eval`).")
    ] = SEARCH_FOLDS,
    holdout: Annotated[
        float, typer.Option(help="Share of prompts kept out of training and reported on.")
    ] = 0.0,
    param: Annotated[
        list[str] | None, typer.Option(help="Fix or narrow a hyper-parameter: NAME=VALUE.")
    ] = None,
) -> None:
    """Train a learned scorer and save it as a versioned artifact."""
    if not 0.0 <= holdout < 1.0:
        raise typer.BadParameter("must be in [0, 1)", param_hint="--holdout")
    if kind == "verifier":
        _train_verifier(data, out, encoder, fmt)
        return
    try:
        _check_kind(kind)
        dataset = _load(data, fmt, exclude_models or [])
        scorer = _train(dataset, kind, encoder, seed, folds, holdout, parse_params(param or []))
        scorer.save(out)
    except ModelyardError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    except (ValueError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc.args[0] if exc.args else exc}")
        raise typer.Exit(2) from None
    _summary(scorer, out)


def _check_kind(kind: str) -> None:
    if kind not in ("knn", "mlp", "mf"):
        raise ValueError(f"--kind must be one of knn, mlp, mf, verifier; got {kind!r}")


def _train_verifier(data: Path, out: Path, encoder: str, fmt: str) -> None:
    """`--kind verifier`: the learned verifier of cascades, trained on the recorded
    answers (the same as `modelyard verifier train`)."""
    from modelyard.verifiers.learned_train import train_command

    try:
        model = train_command(data, out, encoder=encoder, fmt=fmt)
    except (ModelyardError, ValueError, KeyError) as exc:
        message = exc.message if isinstance(exc, ModelyardError) else str(exc)
        console.print(f"[red]error:[/red] {message}")
        raise typer.Exit(2) from None
    console.print(f"wrote the verifier to {out}: {model.summary}, threshold {model.threshold}")


def _load(data: Path, fmt: str, exclude: list[str]) -> OutcomeSet:
    from modelyard.learned.outcomes import load_outcomes

    if fmt not in ("auto", "jsonl", "routerbench"):
        raise ValueError(f"--format must be auto, jsonl or routerbench, got {fmt!r}")
    with console.status(f"reading {data}"):
        dataset = load_outcomes(data, fmt)  # type: ignore[arg-type]
    drop = [m.strip() for item in exclude for m in item.split(",") if m.strip()]
    if drop:
        dataset = dataset.without_models(drop)
    console.print(f"{dataset.name}: {len(dataset)} prompts x {len(dataset.models)} models")
    return dataset


def _train(
    dataset: OutcomeSet,
    kind: str,
    encoder_name: str,
    seed: int,
    folds: int,
    holdout: float,
    params: dict[str, Any],
) -> LearnedScorer:
    import numpy as np

    from modelyard.embeddings import load_encoder
    from modelyard.learned.train import KINDS, train_scorer

    if kind not in KINDS:  # checked before loading; this narrows the type
        raise ValueError(f"--kind must be one of {', '.join(KINDS)}; got {kind!r}")
    with console.status(f"opening encoder {encoder_name}"):
        enc = load_encoder(encoder_name)
    order = np.random.default_rng(seed).permutation(len(dataset))
    train_idx = np.sort(order[round(holdout * len(dataset)) :])
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return train_scorer(
            kind,
            dataset,
            train_idx,
            encoder=enc,
            seed=seed,
            folds=folds,
            encoder_name=encoder_name,
            progress=progress,
            **params,
        )


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _summary(scorer: LearnedScorer, out: Path) -> None:
    m = scorer.manifest
    table = Table(title=f"router artifact {m.version}", show_header=False)
    table.add_row("written to", str(out))
    table.add_row("kind / encoder", f"{m.kind} / {m.encoder.id}")
    table.add_row(
        "data", f"{m.data.name}: {m.data.prompts} training prompts, {len(m.models)} models"
    )
    table.add_row("chosen parameters", json.dumps(m.params))
    cv, base = m.metrics.get("cv_mse"), m.metrics.get("cv_baseline_mse")
    if cv is not None:
        table.add_row("cross-validated MSE", f"{cv:.4f} (per-model mean: {base:.4f})")
    console.print(table)
    held = m.metrics.get("holdout")
    if held:
        report = Table(title=f"held-out prompts ({held['prompts']})")
        report.add_column("metric")
        for column in ("model", "baseline", "oracle"):
            report.add_column(column, justify="right")
        for metric in held["model"]:
            report.add_row(
                metric, *(_fmt(held[c].get(metric, "")) for c in ("model", "baseline", "oracle"))
            )
        console.print(report)
