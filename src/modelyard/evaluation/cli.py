"""`modelyard eval`: replay outcome data through the Engine and measure the routers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from modelyard.errors import ModelyardError

# Heavy imports (NumPy, the harness) happen inside the command, so `modelyard` itself
# starts without the train extra.
console = Console()
# Learned routers, the baselines they must beat (per-model and per-category means), and
# agreement cascades (on data with parsed answers).
KNOWN_ROUTERS = ("knn", "mlp", "mf", "mean", "category", "cascade", "cascade-learned")
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


class BarPhases:
    """One progress bar per phase (loading, embedding, training and replaying); the
    replay bar's label names the task that finished last."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None
        self.name = ""

    def start(self, name: str, total: int | None) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=f"{self.name}: done")
            self.bar.stop_task(self.task)
        self.name = name
        self.task = self.bar.add_task(name, total=total)

    def advance(self, n: int = 1, label: str | None = None) -> None:
        if self.task is not None:
            text = f"{self.name}: {label}" if label else self.name
            self.bar.update(self.task, advance=n, description=text)


def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Outcome file or dataset folder.")],
    routers: Annotated[
        str,
        typer.Option(
            help="Comma list of knn,mlp,mf, the baselines mean,category, and the cascade "
            "families cascade (agreement; needs parsed answers) and cascade-learned "
            "(a learned verifier; needs recorded answers)."
        ),
    ] = "knn,mlp,mf,mean,category,cascade",
    folds: Annotated[
        int, typer.Option(min=0, help="k folds (1 = one 80/20 split, 0 = no in-distribution).")
    ] = 5,
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
        Path | None,
        typer.Option(help="A second dataset: train on all of --data, test on all of this one."),
    ] = None,
    both_directions: Annotated[
        bool, typer.Option(help="With --cross-dataset, also train on it and test on --data.")
    ] = False,
    vector_cache: Annotated[
        Path | None,
        typer.Option(
            help="Keep prompt vectors here between runs [default: $MODELYARD_HOME/vectors]."
        ),
    ] = None,
    no_vector_cache: Annotated[
        bool, typer.Option(help="Do not read or write cached vectors.")
    ] = False,
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
    from modelyard.evaluation.encoding import default_vector_cache
    from modelyard.evaluation.evaluate import Settings
    from modelyard.evaluation.report import print_summary, write_all
    from modelyard.evaluation.run import Study, run_evaluations

    excluded = [p for item in exclude_models or [] for p in item.split(",") if p.strip()]
    study = Study(
        data=data,
        cross=cross_dataset,
        cross_both=both_directions,
        vector_cache=None if no_vector_cache else (vector_cache or default_vector_cache()),
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
            results = run_evaluations(study, BarPhases(bar))
    except (ModelyardError, ValueError, KeyError) as exc:
        message = exc.message if isinstance(exc, ModelyardError) else str(exc)
        console.print(f"[red]error:[/red] {message}")
        raise typer.Exit(2) from None
    for ev in results["evaluations"]:
        print_summary(ev, console, points=points)
    for path in write_all(results, out):
        console.print(f"wrote {path}")
