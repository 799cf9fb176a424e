"""`modelyard verifier train`: fit the cascade's `learned` verifier from outcome data.

    modelyard verifier train --data outcomes.jsonl --out verifiers/frugal

The outcome file needs responses (the JSONL `response` field, RouterBench's
`<model>|model_response`). The same command is meant to sit behind
`modelyard router train --kind verifier`; `train_command` is the function to call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from modelyard.errors import ModelyardError

app = typer.Typer(help="Cascade verifiers: train the learned one.")
console = Console(stderr=True)


@app.command("train")
def train(
    data: Annotated[Path, typer.Option(help="Outcome file with responses (JSONL or RouterBench).")],
    out: Annotated[Path, typer.Option(help="Artifact directory to write.")],
    encoder: Annotated[str, typer.Option(help="Encoder (minilm-l6-v2, hashing-256, ...).")] = (
        "minilm-l6-v2"
    ),
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl or routerbench.")] = "auto",
    good_quality: Annotated[
        float, typer.Option(help="An answer with at least this quality counts as good.")
    ] = 0.5,
    threshold: Annotated[
        float | None, typer.Option(help="Acceptance threshold (default: best on training).")
    ] = None,
    tail_words: Annotated[
        int, typer.Option(help="Embed only the last N words of prompt and answer.", min=1)
    ] = 48,
) -> None:
    """Train a learned verifier on every (prompt, response) of the data and save it."""
    from modelyard.verifiers.learned_train import train_command

    try:
        model = train_command(
            data,
            out,
            encoder=encoder,
            fmt=fmt,
            good_quality=good_quality,
            threshold=threshold,
            tail_words=tail_words,
        )
    except ModelyardError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    except (ValueError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc.args[0] if exc.args else exc}")
        raise typer.Exit(2) from None
    s = model.summary
    console.print(
        f"verifier saved to {out}: {s['examples']} examples, {s['good_share']:.0%} good, "
        f"threshold {model.threshold:g}, training accuracy {s['train_accuracy']:.3f}"
    )
