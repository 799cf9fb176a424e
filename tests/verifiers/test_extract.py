"""Extractors find the final answer in a model's text, or nothing (never an error)."""

from __future__ import annotations

import pytest

from modelyard import plugins
from modelyard.verifiers.extract import (
    ExtractOptions,
    auto,
    choice,
    json_field,
    label,
    normalise_parsed,
    number,
)


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is (C)", "C"),
        ("Answer: C", "C"),
        ("**Answer:** (c)", "C"),
        ("Let me think. B looks tempting, but the final answer is D.", "D"),
        ("I considered (A). The answer is (E)", "E"),
        ("C", "C"),
        ("(B).", "B"),
        ("the answer is a bit unclear", None),
        ("No letter here at all.", None),
        ("", None),
    ],
)
def test_choice_letter(text: str, letter: str | None) -> None:
    assert choice(text) == letter


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("It costs $1,000.", "1000"),
        ("5.0", "5"),
        ("$5", "5"),
        ("-0.50 degrees", "-0.5"),
        ("First 3 apples, then 7 pears, so #### 72", "72"),
        ("so the result is \\boxed{3.50}", "3.5"),
        ('{"answer": "1,000", "steps": 4}', "1000"),
        ('{"answer": 12.0}', "12"),
        ("There were 3 cats and then 11.", "11"),
        ("no number here", None),
        ("", None),
    ],
)
def test_number(text: str, value: str | None) -> None:
    assert number(text) == value


def test_label_is_the_last_configured_label_named_as_a_word() -> None:
    opts = ExtractOptions(labels=("positive", "negative", "neutral"))
    assert label("Not positive at all: Negative.", opts) == "negative"
    assert label("It is non-negative-ish", opts) is None
    assert label("Unrelated text", opts) is None
    # Without labels, a short answer is its own label; a long one is none.
    assert label("Paris.") == "paris"
    assert label("Well, it is quite hard to say which city it is.") is None


def test_json_field_reads_a_dotted_path_bare_or_fenced() -> None:
    fenced = 'Here:\n```json\n{"result": {"city": "Oslo", "n": 2.0}}\n```'
    assert json_field(fenced, ExtractOptions(field="result.city")) == "oslo"
    assert json_field(fenced, ExtractOptions(field="result.n")) == "2"
    assert json_field(fenced, ExtractOptions(field="result.missing")) is None
    assert json_field("not json {at all", ExtractOptions(field="x")) is None


def test_auto_tries_letter_then_json_then_number() -> None:
    assert auto("The answer is (B)") == "choice:B"
    assert auto('{"answer": "yes"}') == "json:yes"
    assert auto("about 1,200 people") == "number:1200"
    assert auto("Free text with no final answer") is None


def test_parsed_answers_are_normalised_like_extracted_ones() -> None:
    assert normalise_parsed(" 1,000 ") == "1000"
    assert normalise_parsed("C ") == "c"


def test_built_in_extractors_are_registered_as_entry_points() -> None:
    assert {"auto", "choice", "number", "label", "json"} <= plugins.names(plugins.EXTRACTORS)
    assert plugins.load(plugins.EXTRACTORS, "choice") is choice
