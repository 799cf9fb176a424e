"""`modelyard eval`: replay outcome data through the Engine and measure the routers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from modelyard.errors import ModelyardError

# Heavy imports (NumPy, the harness) happen inside the command, so `modelyard` itself
# starts without the train extra.
console = Console()
KNOWN_ROUTERS = ("knn", "mlp", "mf")
# RouteLLM's pair is GPT-4 vs Mixtral 8x7B; AlpacaEval has both. Skipped when absent.
DEFAULT_PAIRS = (("gpt4_1106_preview", "Mixtral-8x7B-Instruct-v0.1_concise"),)


def _pairs(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    if not values:
        return DEFAULT_PAIRS
    pairs = []
    for value in values:
        strong, sep, weak = value.partition(":")
        if not sep or not strong or not weak:
            raise typer.BadParameter(f"--pair takes STRONG:WEAK, got {value!r}")
        pairs.append((strong, weak))
    return tuple(pairs)


def _routers(value: str) -> tuple[str, ...]:
    routers = tuple(r.strip() for r in value.split(",") if r.strip())
    unknown = [r for r in routers if r not in KNOWN_ROUTERS]
    if not routers or unknown:
        raise typer.BadParameter(
            f"--routers takes a comma list of {', '.join(KNOWN_ROUTERS)}; got {value!r}"
        )
    return routers


def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Outcome file or dataset folder.")],
    routers: Annotated[str, typer.Option(help="Comma list: knn,mlp,mf.")] = "knn,mlp,mf",
    folds: Annotated[int, typer.Option(min=1, help="k folds (1 = one 80/20 split).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for splits and training.")] = 0,
    exclude_models: Annotated[
        list[str] | None,
        typer.Option("--exclude-models", help="Drop models (glob, repeatable): 'FuseChat*'."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where results.json, PNGs, report.html go.")] = Path(
        "eval-out"
    ),
    encoder: Annotated[str, typer.Option(help="minilm-l6-v2, or hashing-<dim>.")] = "minilm-l6-v2",
    cross_dataset: Annotated[
        Path | None, typer.Option(help="A second dataset: train on one, test on the other.")
    ] = None,
    cross_task: Annotated[
        bool, typer.Option(help="Also leave one source / prompt cluster out.")
    ] = True,
    knobs: Annotated[int, typer.Option(min=2, help="Knob values per policy family.")] = 16,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = min(
        2, os.cpu_count() or 1
    ),
    pair: Annotated[
        list[str] | None,
        typer.Option(help="Extra strong:weak pair for threshold routing (repeatable)."),
    ] = None,
    points: Annotated[bool, typer.Option(help="Print every swept point too.")] = False,
) -> None:
    """Replay a dataset through the Engine: single models, oracle, random mix and each
    learned router swept over its knob, with AIQ, APGR and CPT; writes JSON, PNG, HTML."""
    from modelyard.evaluation.evaluate import Settings
    from modelyard.evaluation.report import print_summary, write_all
    from modelyard.evaluation.run import Study, run_evaluations

    excluded = [p for item in exclude_models or [] for p in item.split(",") if p.strip()]
    study = Study(
        data=data,
        cross=cross_dataset,
        exclude=excluded,
        folds=folds,
        cross_task=cross_task,
        encoder=encoder,
        settings=Settings(
            routers=_routers(routers),
            seed=seed,
            knobs=knobs,
            workers=workers,
            named_pairs=_pairs(pair),
        ),
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("embedding prompts", total=None)

            def plans(total: int) -> None:
                bar.update(task, total=total, completed=0, description="replaying")

            def step(label: str) -> None:
                bar.update(task, advance=1, description=label)

            results = run_evaluations(study, on_plans=plans, progress=step)
    except (ModelyardError, ValueError, KeyError) as exc:
        message = exc.message if isinstance(exc, ModelyardError) else str(exc)
        console.print(f"[red]error:[/red] {message}")
        raise typer.Exit(2) from None
    for ev in results["evaluations"]:
        print_summary(ev, console, points=points)
    for path in write_all(results, out):
        console.print(f"wrote {path}")
