"""Synthetic labelled data for specialist tests: three intents with their own words,
shared filler, and optional label noise (which makes an uncalibrated head overconfident)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

VOCAB = {
    "billing": "invoice charge refund payment bill overcharged price receipt",
    "shipping": "parcel delivery courier tracking shipped arrive package late",
    "login": "password account locked reset username signin twofactor email",
}
FILLER = "please help my the a today again why not working hello thanks urgent"
LABELS = tuple(sorted(VOCAB))


def make_rows(
    n_per_class: int, *, seed: int = 0, noise: float = 0.0, own_words: int = 3
) -> list[tuple[str, str]]:
    """(text, label) rows; with `noise`, that share of labels is replaced at random."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for label in LABELS:
        for _ in range(n_per_class):
            words = rng.sample(VOCAB[label].split(), own_words) + rng.sample(FILLER.split(), 3)
            rng.shuffle(words)
            shown = rng.choice(LABELS) if rng.random() < noise else label
            rows.append((" ".join(words), shown))
    rng.shuffle(rows)
    return rows


def write_csv(
    path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows), encoding="utf-8"
    )
    return path
