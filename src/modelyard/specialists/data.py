"""Labelled training data: CSV or JSONL files with a text column and a label column.

Every problem is a `DataError` that names the file and the line (and column) at
fault, because a user fixing a 10,000-row export needs to know *where*:

    tickets.csv: line 17: column 'text' is empty
    tickets.jsonl: line 3: not valid JSON (Expecting ',' delimiter)

Line numbers are the file's own (the CSV header is line 1), so an editor's
"go to line" lands on the row.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.embeddings import Encoder
from modelyard.errors import ModelyardError
from modelyard.specialists.text import CHARS_PER_TOKEN_BOUND, capped_token_lengths

CSV_SUFFIXES = (".csv", ".tsv")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# How many offending rows an error lists before it says "and N more".
_SHOWN = 5


class DataError(ModelyardError):
    """Training or evaluation data is unusable; the message names file, line and column."""

    code = "invalid_data"


@dataclass(frozen=True, slots=True)
class LabelledData:
    """Texts and their labels, with the source line of each row for error messages."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    lines: tuple[int, ...]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def distribution(self) -> Counter[str]:
        return Counter(self.labels)

    def subset(self, indices: Sequence[int]) -> LabelledData:
        return LabelledData(
            tuple(self.texts[i] for i in indices),
            tuple(self.labels[i] for i in indices),
            tuple(self.lines[i] for i in indices),
            self.source,
        )


def load_labelled(
    path: str | Path, *, text: str = "text", label: str = "label", min_classes: int = 2
) -> LabelledData:
    """Read `path` (.csv/.tsv or .jsonl/.ndjson), taking `text` and `label` columns.

    Refuses an empty file, a missing column, an empty text or label, a malformed
    row, and (with `min_classes=2`, for training) data with a single class."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type '{suffix or '(none)'}': "
            f"use {', '.join(CSV_SUFFIXES + JSONL_SUFFIXES)}"
        )
    try:
        raw = _read_utf8(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    rows = _csv_rows(raw, path, text, label) if suffix in CSV_SUFFIXES else None
    if rows is None:
        rows = _jsonl_rows(raw, path, text, label)
    data = _collect(rows, path, text, label)
    check_classes(data, min_classes, label)
    return data


def _read_utf8(path: Path) -> str:
    """The file's text; a non-UTF-8 byte is reported by line and column, as every
    other data error is."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{path}: line {line}: not UTF-8 text ({exc.reason} at column {column}); "
            "save the file as UTF-8"
        ) from None


def _csv_rows(raw: str, path: Path, text: str, label: str) -> Iterator[tuple[int, Any, Any]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # The csv module refuses fields over 131,072 characters by default; a long text
    # is for the length check (and --truncate) to judge, not a malformed row.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(raw.splitlines(keepends=True), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: malformed header ({exc})") from None
    header = [h.strip() for h in header]
    for needed in (text, label):
        if needed not in header:
            raise DataError(
                f"{path}: no column '{needed}' in the header (columns: {', '.join(header)})"
            )
    ti, li = header.index(text), header.index(label)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{path}: line {start}: malformed CSV ({exc})") from None
        if not row or all(not cell.strip() for cell in row):
            continue  # a blank line is not a row
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {start}: expected {len(header)} fields "
                f"({', '.join(header)}), got {len(row)}"
            )
        yield start, row[ti], row[li]


def _jsonl_rows(raw: str, path: Path, text: str, label: str) -> Iterator[tuple[int, Any, Any]]:
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{path}: line {number}: expected a JSON object, got {type(obj).__name__}"
            )
        for needed in (text, label):
            if needed not in obj:
                raise DataError(
                    f"{path}: line {number}: no field '{needed}' "
                    f"(fields: {', '.join(map(str, obj)) or 'none'})"
                )
        yield number, obj[text], obj[label]


def _collect(
    rows: Iterator[tuple[int, Any, Any]], path: Path, text: str, label: str
) -> LabelledData:
    texts: list[str] = []
    labels: list[str] = []
    lines: list[int] = []
    for line, text_value, label_value in rows:
        texts.append(_cell(text_value, path, line, text))
        labels.append(_cell(label_value, path, line, label, allow_number=True))
        lines.append(line)
    if not texts:
        raise DataError(f"{path}: no data rows (only a header or blank lines)")
    return LabelledData(tuple(texts), tuple(labels), tuple(lines), str(path))


def _cell(value: Any, path: Path, line: int, column: str, *, allow_number: bool = False) -> str:
    """A non-empty string cell. Integer labels (JSON `3`) are read as their text."""
    if allow_number and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(
            f"{path}: line {line}: column '{column}' must be text, got {type(value).__name__}"
        )
    cleaned: str = value.strip()
    if not cleaned:
        raise DataError(f"{path}: line {line}: column '{column}' is empty")
    return cleaned


def check_classes(data: LabelledData, min_classes: int, column: str = "label") -> None:
    """Training needs at least two classes; say which one there is when there is only one."""
    classes = data.distribution()
    if len(classes) < min_classes:
        only = ", ".join(f"'{c}'" for c in classes)
        raise DataError(
            f"{data.source}: column '{column}' has {len(classes)} distinct label(s) ({only}); "
            f"training a classifier needs at least {min_classes}"
        )


def check_lengths(
    data: LabelledData, encoder: Encoder, *, truncate: bool, column: str = "text"
) -> list[int]:
    """Rows whose text is longer than the encoder reads (it would silently cut them).

    Without `truncate` that is an error naming the rows; with it, the rows are
    returned so the caller can report how many were cut."""
    limit = encoder.max_tokens
    if limit is None:
        return []
    lengths = capped_token_lengths(encoder, data.texts, limit)
    over = [i for i, n in enumerate(lengths) if n > limit]
    if over and not truncate:
        shown = "; ".join(
            f"line {data.lines[i]}: {_tokens(data.texts[i], lengths[i], limit)}"
            for i in over[:_SHOWN]
        )
        more = f" and {len(over) - _SHOWN} more" if len(over) > _SHOWN else ""
        raise DataError(
            f"{data.source}: {len(over)} text(s) in column '{column}' are longer than the "
            f"encoder {encoder.id} reads ({limit} tokens): {shown}{more}. Shorten them, or pass "
            f"--truncate to train on their first {limit} tokens"
        )
    return over


def _tokens(text: str, counted: int, limit: int) -> str:
    """A long text's count is of its prefix only (see `capped_token_lengths`)."""
    capped = len(text) > (limit + 1) * CHARS_PER_TOKEN_BOUND
    return f"{counted}+ tokens" if capped else f"{counted} tokens"


def check_known_labels(
    data: LabelledData, known: Sequence[str], column: str = "label", *, oos_hint: bool = False
) -> None:
    """Evaluation data may only use labels the specialist was trained on (apart from
    the out-of-scope label, which the caller has taken out)."""
    allowed = set(known)
    bad = [i for i, label in enumerate(data.labels) if label not in allowed]
    if not bad:
        return
    shown = "; ".join(f"line {data.lines[i]}: '{data.labels[i]}'" for i in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    raise DataError(
        f"{data.source}: column '{column}' has labels the specialist does not know "
        f"(it knows {len(allowed)}): {shown}{more}"
        + (
            "; if these rows are out of scope, pass --oos-label with their label to measure "
            "how many escalate"
            if oos_hint
            else ""
        )
    )


def split_out_of_scope(data: LabelledData, oos_label: str) -> tuple[LabelledData, LabelledData]:
    """(in-scope rows, out-of-scope rows) of training data with an `oos_label` class.
    Out-of-scope examples are not a class: at least two other classes must remain."""
    inside = [i for i, label in enumerate(data.labels) if label != oos_label]
    outside = [i for i, label in enumerate(data.labels) if label == oos_label]
    if not outside:
        raise DataError(
            f"{data.source}: no row is labelled '{oos_label}' (--oos-label); labels found: "
            + ", ".join(f"'{c}'" for c, _ in data.distribution().most_common(_SHOWN))
        )
    in_scope = data.subset(inside) if inside else None
    classes = sorted(set(in_scope.labels)) if in_scope else []
    if in_scope is None or len(classes) < 2:
        only = ", ".join(f"'{c}'" for c in classes) or "none"
        raise DataError(
            f"{data.source}: besides the {len(outside):,} out-of-scope '{oos_label}' rows there "
            f"is {len(classes)} in-scope class ({only}); a specialist needs at least 2 "
            "in-scope classes (out-of-scope examples teach it what to escalate, they are "
            "not a class it answers)"
        )
    return in_scope, data.subset(outside)


def load_out_of_scope(
    path: str | Path, *, text: str, label: str, known: Sequence[str], oos_label: str | None
) -> LabelledData:
    """Out-of-scope texts from their own file. A label column is optional; if there is
    one, a row labelled with one of the specialist's own classes is a mistake (it is
    in scope) and is refused with its line."""
    try:
        data = load_labelled(path, text=text, label=label, min_classes=1)
    except DataError as exc:
        if f"no column '{label}'" not in exc.message and f"no field '{label}'" not in exc.message:
            raise
        return load_labelled(path, text=text, label=text, min_classes=1)
    allowed = set(known)
    bad = [i for i, lab in enumerate(data.labels) if lab in allowed and lab != oos_label]
    if bad:
        shown = "; ".join(f"line {data.lines[i]}: '{data.labels[i]}'" for i in bad[:_SHOWN])
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise DataError(
            f"{data.source}: an out-of-scope file holds texts that belong to none of the "
            f"specialist's classes, but {len(bad)} row(s) carry one of them in column "
            f"'{label}': {shown}{more}. Move them to the training data, or drop the column"
        )
    return data
