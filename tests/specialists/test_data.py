"""Loading labelled data: every bad input is a clear error naming the line or column."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("numpy")

from modelyard.embeddings import HashingEncoder
from modelyard.specialists.data import (
    DataError,
    LabelledData,
    check_known_labels,
    check_lengths,
    load_labelled,
)
from tests.specialists.helpers import make_rows, write_csv, write_jsonl


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_and_jsonl_read_the_same_rows(tmp_path: Path) -> None:
    rows = make_rows(5)
    a = load_labelled(write_csv(tmp_path / "d.csv", rows))
    b = load_labelled(write_jsonl(tmp_path / "d.jsonl", rows))
    assert a.texts == b.texts == tuple(t for t, _ in rows)
    assert a.labels == b.labels
    assert a.lines[0] == 2  # the header is line 1
    assert b.lines[0] == 1


def test_named_columns_and_quoted_multiline_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path, "t.csv", 'id,body,category\n1,"two\nlines",a\n2,plain,b\n3,"say ""hi""",a\n'
    )
    data = load_labelled(path, text="body", label="category")
    assert data.texts == ("two\nlines", "plain", 'say "hi"')
    assert data.lines == (2, 4, 5)  # the quoted newline makes row 2 span lines 2-3


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.csv", "", "the file is empty"),
        ("blank.jsonl", "\n  \n", "the file is empty"),
        ("header.csv", "text,label\n", "no data rows"),
        ("cols.csv", "body,label\nx,a\n", "no column 'text' in the header (columns: body, label)"),
        ("cols.jsonl", '{"text": "x"}\n', "line 1: no field 'label'"),
        ("emptytext.csv", "text,label\nok,a\n  ,b\n", "line 3: column 'text' is empty"),
        (
            "emptylabel.jsonl",
            '{"text":"x","label":"a"}\n{"text":"y","label":""}\n',
            "line 2: column 'label' is empty",
        ),
        ("fields.csv", "text,label\nok,a\nx,b,extra\n", "line 3: expected 2 fields"),
        ("quote.csv", 'text,label\nok,a\n"unclosed,b\n', "line 3: malformed CSV"),
        ("bad.jsonl", '{"text":"x","label":"a"}\n{"text": oops}\n', "line 2: not valid JSON"),
        ("list.jsonl", '["x", "a"]\n', "line 1: expected a JSON object, got list"),
        (
            "type.jsonl",
            '{"text": 3, "label": "a"}\n',
            "line 1: column 'text' must be text, got int",
        ),
        ("one.csv", "text,label\nx,a\ny,a\n", "has 1 distinct label(s) ('a')"),
        ("data.xlsx", "whatever", "unsupported file type '.xlsx'"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, name: str, content: str, needle: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        load_labelled(path)
    assert needle in info.value.message
    assert str(path) in info.value.message


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_labelled(tmp_path / "nope.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\ncaf\xe9,a\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_labelled(path)


def test_integer_labels_in_jsonl_are_read_as_text(tmp_path: Path) -> None:
    path = write(tmp_path, "n.jsonl", '{"text":"x","label":1}\n{"text":"y","label":2}\n')
    assert load_labelled(path).labels == ("1", "2")


class ShortEncoder(HashingEncoder):
    """A hashing encoder that claims to read only 4 tokens, like a real one's window."""

    max_tokens = 4


def test_texts_over_the_encoder_window_are_refused_by_row(tmp_path: Path) -> None:
    path = write(tmp_path, "long.csv", "text,label\nshort one,a\none two three four five,b\nok,a\n")
    data = load_labelled(path)
    with pytest.raises(DataError) as info:
        check_lengths(data, ShortEncoder(), truncate=False)
    message = info.value.message
    assert "line 3: 5 tokens" in message
    assert "(4 tokens)" in message
    assert "--truncate" in message
    assert check_lengths(data, ShortEncoder(), truncate=True) == [1]
    assert check_lengths(data, HashingEncoder(), truncate=False) == []  # no window at all


def test_labels_the_specialist_does_not_know_are_named() -> None:
    data = LabelledData(("a", "b", "c"), ("x", "zzz", "y"), (2, 3, 4), "held.csv")
    with pytest.raises(DataError) as info:
        check_known_labels(data, ["x", "y"])
    assert "line 3: 'zzz'" in info.value.message
    check_known_labels(data.subset([0, 2]), ["x", "y"])
