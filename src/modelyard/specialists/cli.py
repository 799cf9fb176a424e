"""`modelyard specialist train | eval | distill | list`.

    modelyard specialist train --name support-intents --data tickets.csv --label category
    modelyard specialist eval --name support-intents --data held_out.csv
    modelyard specialist distill --name support-intents --from-ledger --task support-intents

Specialists are written to `$MODELYARD_HOME/specialists/<name>/vNNNN/` (or `--dir`),
where the built-in stack finds them: `modelyard serve` then has `specialist/<name>`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from modelyard.errors import ModelyardError
from modelyard.specialists.manifest import (
    HeadKind,
    Manifest,
    check_name,
    read_manifest,
    specialists_home,
    version_dirs,
)
from modelyard.types import money_text

if TYPE_CHECKING:  # the heavy modules load only when a command runs
    from modelyard.ledger import Exchange
    from modelyard.specialists.data import LabelledData
    from modelyard.specialists.distill import DistillSet
    from modelyard.specialists.shadow import ShadowSummary
    from modelyard.specialists.train import TrainOptions

app = typer.Typer(
    help="Train, evaluate, distill, list, and shadow/promote owned specialists.",
    no_args_is_help=True,
)
console = Console()

NameOpt = Annotated[str, typer.Option("--name", help="Its name; served as specialist/NAME.")]
DataOpt = Annotated[Path, typer.Option("--data", help="CSV/TSV or JSONL file of labelled texts.")]
TextOpt = Annotated[str, typer.Option("--text", help="Column (or JSON field) with the text.")]
LabelOpt = Annotated[str, typer.Option("--label", help="Column (or JSON field) with the label.")]
TaskOpt = Annotated[
    str | None, typer.Option("--task", help="The task it serves (default: its name).")
]
DirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help="Specialists folder (default $MODELYARD_HOME/specialists)."),
]
EncoderOpt = Annotated[str, typer.Option("--encoder", help="minilm-l6-v2, or hashing-<dim>.")]
HeadOpt = Annotated[str, typer.Option("--head", help="linear (logistic regression) or mlp.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the split and the head.")]
COpt = Annotated[float, typer.Option("--c", help="Inverse L2 strength of the linear head.")]
BalancedOpt = Annotated[bool, typer.Option("--balanced", help="Weight classes by 1/frequency.")]
TruncateOpt = Annotated[
    bool, typer.Option("--truncate", help="Train on texts longer than the encoder reads (cut).")
]
OosLabelOpt = Annotated[
    str | None,
    typer.Option("--oos-label", help="Rows with this label are out-of-scope examples."),
]
OosDataOpt = Annotated[
    Path | None,
    typer.Option("--oos-data", help="A file of out-of-scope texts (same --text column)."),
]
OosRecallOpt = Annotated[
    float,
    typer.Option("--oos-recall", help="Share of out-of-scope inputs the threshold escalates."),
]
TargetOpt = Annotated[
    float,
    typer.Option("--target-accuracy", help="Default threshold: held-out accuracy to reach."),
]


def _home(folder: Path | None) -> Path:
    return folder.expanduser() if folder else specialists_home(dict(os.environ))


@contextmanager
def _errors() -> Iterator[None]:
    """Every modelyard error ends the command with its message and exit code 2."""
    try:
        yield
    except ModelyardError as exc:
        console.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _distribution_table(title: str, counts: Counter[str], limit: int = 15) -> Table:
    table = Table(title=title)
    table.add_column("label")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    total = sum(counts.values()) or 1
    for label, n in counts.most_common(limit):
        table.add_row(escape(label), f"{n:,}", f"{n / total:.1%}")
    if len(counts) > limit:
        rest = sum(n for _, n in counts.most_common()[limit:])
        table.add_row(f"({len(counts) - limit} more labels)", f"{rest:,}", f"{rest / total:.1%}")
    return table


def _head(kind: str) -> HeadKind:
    if kind not in ("linear", "mlp"):
        raise typer.BadParameter("--head must be linear or mlp")
    return "linear" if kind == "linear" else "mlp"


def _train_and_save(
    data: LabelledData,
    *,
    name: str,
    task: str,
    encoder_name: str,
    options: TrainOptions,
    home: Path,
    oos: LabelledData | None = None,
) -> Manifest:
    """Check lengths, train with a progress bar, save a new version, print the summary."""
    from modelyard.embeddings import load_encoder
    from modelyard.specialists.artifact import next_version, save_specialist
    from modelyard.specialists.data import check_lengths
    from modelyard.specialists.train import Stages, train_specialist

    encoder = load_encoder(encoder_name)
    cut = check_lengths(data, encoder, truncate=options.truncate)
    if cut:
        console.print(f"[yellow]{len(cut)} text(s) cut to {encoder.max_tokens} tokens[/yellow]")
    with _progress() as progress:

        def encoding(total: int) -> Callable[[int], None]:
            task_id = progress.add_task(f"encoding with {encoder.id}", total=total)
            return lambda n: progress.advance(task_id, n)

        stages = Stages(encoding=encoding, stage=lambda text: progress.console.print(f"  {text}"))
        trained = train_specialist(
            data,
            encoder,
            encoder_name=encoder_name,
            name=name,
            task=task,
            version=next_version(home / name),
            options=options,
            stages=stages,
            oos=oos,
        )
    folder = save_specialist(home / name, trained.manifest, trained.weights)
    _print_manifest(trained.manifest, folder)
    return trained.manifest


def _print_manifest(m: Manifest, folder: Path) -> None:
    metrics = m.metrics
    table = Table(title=f"specialist/{m.name} v{m.version} (task '{m.task}')")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("labels", f"{len(m.labels)}"),
        ("training rows", f"{m.training.rows:,}"),
        ("held-out rows", f"{metrics.get('heldout_rows', 0):,.0f}"),
        ("held-out accuracy", f"{metrics.get('heldout_accuracy', float('nan')):.4f}"),
        ("ECE before / after calibration", _ece_pair(metrics)),
        ("temperature", f"{m.temperature:.3f}"),
        ("escalation threshold", f"{m.threshold:.3f}"),
        ("answered at threshold", f"{metrics.get('heldout_coverage_at_threshold', 0):.1%}"),
        *_oos_rows(m),
        ("training time", f"{m.training.seconds:.1f} s"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    console.print(f"saved to {folder}", markup=False)
    console.print(
        f"served as [bold]specialist/{m.name}[/bold] for requests with "
        f'modelyard: {{"task": "{escape(m.task)}"}} (built-in stack: automatically; '
        f"with --config: add `specialists: {{{m.name}: {{}}}}`)"
    )


def _oos_rows(m: Manifest) -> list[tuple[str, str]]:
    if m.oos is None:
        return [("out-of-scope check", "none (needs 3+ classes or --oos-label/--oos-data)")]
    o = m.oos
    return [
        ("out-of-scope threshold", f"{o.threshold:.3f} ({o.method}: {o.detail})"),
        ("expected out-of-scope escalated", f"{o.expected_oos_recall:.1%}"),
        ("expected in-scope answered", f"{o.expected_inscope_answer_rate:.1%}"),
        ("out-of-scope AUROC (combined)", f"{o.auroc.get('combined', float('nan')):.4f}"),
    ]


def _ece_pair(metrics: dict[str, float]) -> str:
    before = metrics.get("heldout_ece_uncalibrated")
    after = metrics.get("heldout_ece")
    if before is None or after is None:
        return "-"
    return f"{before:.4f} / {after:.4f}"


@app.command("train")
def train(
    name: NameOpt,
    data: DataOpt,
    text: TextOpt = "text",
    label: LabelOpt = "label",
    task: TaskOpt = None,
    encoder: EncoderOpt = "minilm-l6-v2",
    head: HeadOpt = "linear",
    seed: SeedOpt = 0,
    c: COpt = 10.0,
    balanced: BalancedOpt = False,
    truncate: TruncateOpt = False,
    target_accuracy: TargetOpt = 0.95,
    oos_label: OosLabelOpt = None,
    oos_data: OosDataOpt = None,
    oos_recall: OosRecallOpt = 0.85,
    folder: DirOpt = None,
) -> None:
    """Train a specialist on labelled data and save a new version of it."""
    from modelyard.specialists.data import load_labelled, load_out_of_scope, split_out_of_scope
    from modelyard.specialists.train import TrainOptions

    with _errors():
        check_name(name)
        if not 0 < oos_recall <= 1:
            raise typer.BadParameter("--oos-recall must be in (0, 1]")
        rows = load_labelled(data, text=text, label=label, min_classes=1 if oos_label else 2)
        oos = None
        if oos_label is not None:
            rows, oos = split_out_of_scope(rows, oos_label)
        if oos_data is not None:
            more = load_out_of_scope(
                oos_data, text=text, label=label, known=rows.labels, oos_label=oos_label
            )
            oos = more if oos is None else _joined(oos, more)
        console.print(
            f"{data}: {len(rows):,} rows, {len(rows.distribution())} labels", markup=False
        )
        options = TrainOptions(
            seed=seed,
            head=_head(head),
            c=c,
            balanced=balanced,
            truncate=truncate,
            target_accuracy=target_accuracy,
            oos_target_recall=oos_recall,
        )
        _train_and_save(
            rows,
            name=name,
            task=task or name,
            encoder_name=encoder,
            options=options,
            home=_home(folder),
            oos=oos,
        )


def _joined(a: LabelledData, b: LabelledData) -> LabelledData:
    from modelyard.specialists.data import LabelledData as Rows

    return Rows(a.texts + b.texts, a.labels + b.labels, a.lines + b.lines, f"{a.source}+{b.source}")


@app.command("eval")
def evaluate(
    name: NameOpt,
    data: DataOpt,
    text: TextOpt = "text",
    label: LabelOpt = "label",
    threshold: Annotated[
        float | None, typer.Option(help="Escalation threshold (default: the artifact's).")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG path (default: in the artifact).")] = None,
    all_classes: Annotated[bool, typer.Option("--all-classes", help="Every class.")] = False,
    oos_label: Annotated[
        str | None,
        typer.Option("--oos-label", help="Rows with this label are out of scope."),
    ] = None,
    folder: DirOpt = None,
) -> None:
    """Evaluate a specialist on labelled data; print the report and write a PNG + JSON."""
    from modelyard.specialists.artifact import load_specialist, write_extra
    from modelyard.specialists.data import check_known_labels, load_labelled
    from modelyard.specialists.evaluate import evaluate as run_eval
    from modelyard.specialists.evaluate import plot as draw
    from modelyard.specialists.evaluate import split_oos_rows
    from modelyard.specialists.manifest import resolve

    with _errors():
        version = resolve(_home(folder) / check_name(name))
        model = load_specialist(version)
        rows = load_labelled(data, text=text, label=label, min_classes=1)
        # Unknown labels are refused before any work (and before a progress bar).
        inside, _ = split_oos_rows(rows, oos_label)
        check_known_labels(rows.subset(inside.tolist()), model.labels, oos_hint=oos_label is None)
        with _progress() as progress:
            task_id = progress.add_task(f"scoring {len(rows):,} rows", total=len(rows))
            report = run_eval(
                model,
                rows,
                threshold=threshold,
                advance=lambda n: progress.advance(task_id, n),
                oos_label=oos_label,
            )
        from modelyard.specialists.report import print_report

        print_report(console, report, all_classes=all_classes)
        png = draw(report, plot or version / "eval.png")
        out = write_extra(version, "eval.json", report.to_json())
        console.print(f"wrote {png} and {out}", markup=False)


@app.command("distill")
def distill(
    name: NameOpt,
    from_ledger: Annotated[
        bool, typer.Option("--from-ledger", help="Use exchanges captured in the ledger.")
    ] = False,
    task: TaskOpt = None,
    labels: Annotated[
        str | None,
        typer.Option(help="Label set: a,b,c / JSON list / file (default: the artifact's)."),
    ] = None,
    teacher: Annotated[str | None, typer.Option(help="Only this model's answers.")] = None,
    database: Annotated[str | None, typer.Option(help="Ledger URL (default: env/SQLite).")] = None,
    min_rows: Annotated[int, typer.Option(help="Refuse to train on fewer rows.")] = 20,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the set; do not train.")] = False,
    encoder: EncoderOpt = "minilm-l6-v2",
    head: HeadOpt = "linear",
    seed: SeedOpt = 0,
    c: COpt = 10.0,
    truncate: TruncateOpt = False,
    target_accuracy: TargetOpt = 0.95,
    folder: DirOpt = None,
) -> None:
    """Train a specialist on the answers a stronger model gave to requests of one task."""
    from modelyard.specialists.data import DataError, check_classes
    from modelyard.specialists.distill import distill as build_set
    from modelyard.specialists.train import TrainOptions

    with _errors():
        if not from_ledger:
            raise DataError("distill reads captured exchanges: pass --from-ledger")
        home = _home(folder)
        label_set = _label_set(labels, home / check_name(name))
        task = task or name
        exchanges = anyio.run(_exchanges, database, task)
        found = build_set(exchanges, label_set, source=f"ledger task '{task}'", teacher=teacher)
        _print_distill(found, task)
        if found.data is None or len(found.data) < min_rows:
            n = 0 if found.data is None else len(found.data)
            raise DataError(
                f"ledger task '{task}': {n} usable exchange(s), fewer than --min-rows {min_rows}; "
                f"capture more with `capture: {{tasks: [{task}]}}` in the config"
            )
        check_classes(found.data, 2)
        if dry_run:
            return
        options = TrainOptions(
            seed=seed,
            head=_head(head),
            c=c,
            truncate=truncate,
            target_accuracy=target_accuracy,
        )
        _train_and_save(
            found.data, name=name, task=task, encoder_name=encoder, options=options, home=home
        )


def _label_set(spec: str | None, name_dir: Path) -> tuple[str, ...]:
    from modelyard.specialists.data import DataError
    from modelyard.specialists.distill import parse_label_set

    if spec is not None:
        return parse_label_set(spec)
    if version_dirs(name_dir):
        return read_manifest(name_dir).labels
    raise DataError(
        f"no label set: '{name_dir.name}' has not been trained yet, so pass --labels "
        "(a,b,c, a JSON list, or a file with one label per line)"
    )


async def _exchanges(database: str | None, task: str) -> Sequence[Exchange]:
    from modelyard.ledger import ledger_url_from_env, open_ledger

    ledger = open_ledger(database or ledger_url_from_env())
    await ledger.open()
    try:
        return await ledger.exchanges(task=task)
    finally:
        await ledger.close()


def _print_distill(found: DistillSet, task: str) -> None:
    usable = 0 if found.data is None else len(found.data)
    console.print(
        f"ledger task '{task}': {found.total:,} teacher answer(s); {usable:,} parsed into labels, "
        f"{found.unparsed:,} could not be parsed"
        + (f"; {found.skipped_own:,} specialist answer(s) skipped" if found.skipped_own else ""),
        markup=False,
    )
    for example in found.examples_unparsed:
        console.print(f"  unparsed: {escape(repr(example))}")
    if found.teachers:
        console.print(
            "teachers: " + ", ".join(f"{m} ({n:,})" for m, n in found.teachers.most_common()),
            markup=False,
        )
    if found.data is not None:
        console.print(_distribution_table("label distribution", found.distribution))


@app.command("list")
def list_specialists(folder: DirOpt = None) -> None:
    """The trained specialists and their latest versions."""
    home = _home(folder)
    table = Table(title=f"specialists in {home}")
    for col in ("model", "version", "task", "labels", "encoder", "held-out acc", "threshold"):
        table.add_column(col)
    table.add_column("trained")
    names = sorted(p.name for p in home.iterdir() if version_dirs(p)) if home.is_dir() else []
    for name in names:
        with _errors():
            m = read_manifest(home / name)
        acc = m.heldout_accuracy
        table.add_row(
            f"specialist/{m.name}",
            f"v{m.version}",
            m.task,
            str(len(m.labels)),
            m.encoder.name,
            "-" if acc is None else f"{acc:.4f}",
            f"{m.threshold:.3f}",
            m.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
    if not names:
        console.print("none yet: `modelyard specialist train --name NAME --data FILE ...`")


LastOpt = Annotated[int, typer.Option("--last", help="Look at the last N shadowed requests.")]
DatabaseOpt = Annotated[str | None, typer.Option(help="Ledger URL (default: env/SQLite).")]


@app.command("status")
def status(
    name: NameOpt, last: LastOpt = 200, database: DatabaseOpt = None, folder: DirOpt = None
) -> None:
    """Shadow-mode figures: agreement with the served answers, coverage, projected saving."""
    from modelyard.specialists.shadow import is_promoted

    with _errors():
        name_dir = _home(folder) / check_name(name)
        summary = anyio.run(_summary, database, name, last)
        manifest = read_manifest(name_dir) if version_dirs(name_dir) else None
        _print_status(name, summary, last, manifest, is_promoted(name_dir))


async def _summary(database: str | None, name: str, last: int) -> ShadowSummary:
    from modelyard.ledger import ledger_url_from_env, open_ledger
    from modelyard.specialists.shadow import summarise

    ledger = open_ledger(database or ledger_url_from_env())
    await ledger.open()
    try:
        records = await ledger.records(limit=1_000_000)
    finally:
        await ledger.close()
    return summarise(records, f"specialist/{name}", last)


def _print_status(
    name: str, s: ShadowSummary, last: int, manifest: Manifest | None, promoted: bool
) -> None:
    if s.shadowed == 0:
        task = manifest.task if manifest else name
        console.print(
            f"specialist/{escape(name)} has shadowed no request yet. Shadow mode needs "
            f"`mode: shadow` in its `specialists:` entry and requests that declare its task "
            f'(modelyard: {{"task": "{escape(task)}"}} or the x-modelyard-task header)'
        )
        return
    table = Table(title=f"specialist/{name} in shadow, last {s.shadowed:,} of {last:,} requests")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("agreement with the served answer", f"{s.agreement:.1%} of {s.compared:,}")
    table.add_row("not comparable (served answer not a label)", f"{s.shadowed - s.compared:,}")
    table.add_row("coverage (would answer, not escalate)", f"{s.coverage:.1%}")
    table.add_row("served cost of these requests", f"${money_text(s.served_cost)}")
    table.add_row(
        "projected saving (served cost it would answer)", f"${money_text(s.projected_saving)}"
    )
    table.add_row("promoted", "yes (serves from the next start)" if promoted else "no")
    console.print(table)


@app.command("promote")
def promote(
    name: NameOpt,
    min_agreement: Annotated[
        float, typer.Option("--min-agreement", help="Agreement needed over the last N.")
    ] = 0.95,
    last: LastOpt = 200,
    database: DatabaseOpt = None,
    folder: DirOpt = None,
) -> None:
    """Switch a shadowed specialist to serving when it agreed often enough."""
    from modelyard.specialists.data import DataError
    from modelyard.specialists.shadow import write_promotion

    with _errors():
        name_dir = _home(folder) / check_name(name)
        read_manifest(name_dir)
        summary = anyio.run(_summary, database, name, last)
        if summary.compared < last:
            raise DataError(
                f"specialist/{name}: {summary.compared:,} comparable shadowed request(s), "
                f"fewer than --last {last:,}; keep it in shadow longer (or lower --last)"
            )
        if summary.agreement < min_agreement:
            raise DataError(
                f"specialist/{name}: agreement {summary.agreement:.1%} over the last "
                f"{summary.compared:,} is below --min-agreement {min_agreement:.1%}; not promoted"
            )
        out = write_promotion(name_dir, summary, f"promote --min-agreement {min_agreement}")
        console.print(
            f"promoted specialist/{escape(name)} ({summary.agreement:.1%} agreement over "
            f"{summary.compared:,}); it serves from the next start ({out})"
        )
