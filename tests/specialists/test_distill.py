"""Distillation: answers parsed into labels, counts and distribution, own answers skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("numpy")

from modelyard.ledger import Exchange
from modelyard.specialists.data import DataError
from modelyard.specialists.distill import LabelParser, distill, parse_label_set
from modelyard.specialists.text import request_text
from modelyard.types import Message

LABELS = ("card_arrival", "lost_card", "refund")


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("card_arrival", "card_arrival"),
        ("  Card_Arrival.\n", "card_arrival"),
        ("card arrival", "card_arrival"),
        ('"lost-card"', "lost_card"),
        ('{"label": "REFUND", "confidence": 0.9}', "refund"),
        ('```json\n{"label": "lost_card"}\n```', "lost_card"),
        ("The intent is refund.", None),
        ('{"intent": "refund"}', None),
        ('{"label": "unknown"}', None),
        ("{not json", None),
        ("", None),
        (None, None),
    ],
)
def test_answers_are_parsed_into_the_label_set(answer: str | None, label: str | None) -> None:
    assert LabelParser(LABELS).parse(answer) == label


def exchange(model: str, text: str, answer: str | None, n: int = 0) -> Exchange:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Pick one of: " + ", ".join(LABELS)},
        {"role": "user", "content": [{"type": "text", "text": text}]},
    ]
    return Exchange(
        record_id=f"r{n}",
        request_id=f"q{n}",
        task="cards",
        model_id=model,
        messages=messages,
        response=answer,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_distill_counts_parses_and_skips_the_specialists_own_answers() -> None:
    exchanges = [
        exchange("openai/gpt-5.1", "where is my card", "card_arrival", 1),
        exchange("openai/gpt-5.1", "card still not here", "Card arrival", 2),
        exchange("anthropic/claude-haiku-4-5", "I lost it", '{"label": "lost_card"}', 3),
        exchange("anthropic/claude-haiku-4-5", "money back?", "You probably want a refund", 4),
        exchange("specialist/cards", "where is it", "card_arrival", 5),
    ]
    found = distill(exchanges, LABELS, source="ledger")
    assert found.total == 4
    assert found.unparsed == 1
    assert found.skipped_own == 1
    assert found.examples_unparsed == ("You probably want a refund",)
    assert found.data is not None
    assert found.data.texts == ("where is my card", "card still not here", "I lost it")
    assert found.distribution == {"card_arrival": 2, "lost_card": 1}
    assert found.teachers == {"openai/gpt-5.1": 2, "anthropic/claude-haiku-4-5": 1}
    only = distill(exchanges, LABELS, source="ledger", teacher="openai/gpt-5.1")
    assert only.total == 2
    assert only.data is not None
    assert only.data.labels == ("card_arrival", "card_arrival")


def test_nothing_parsed_gives_no_data() -> None:
    found = distill([exchange("m", "x", "no idea")], LABELS, source="ledger")
    assert found.data is None
    assert found.unparsed == 1


def test_request_text_is_the_last_user_message_for_dicts_and_messages() -> None:
    turns: list[dict[str, Any]] = [
        {"role": "system", "content": "labels..."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": " second "}]},
    ]
    assert request_text(turns) == "second"
    assert request_text([Message.model_validate(t) for t in turns]) == "second"
    assert request_text([{"role": "system", "content": "only a system"}]) == "only a system"


def test_label_sets_from_text_json_and_files(tmp_path: Any) -> None:
    assert parse_label_set("a, b ,c") == ("a", "b", "c")
    assert parse_label_set('["x", "y", "x"]') == ("x", "y")
    path = tmp_path / "labels.txt"
    path.write_text("one\ntwo\n\n")
    assert parse_label_set(str(path)) == ("one", "two")
    with pytest.raises(DataError, match="at least 2 distinct labels"):
        parse_label_set("solo")
    with pytest.raises(DataError, match="not a valid JSON list"):
        parse_label_set("[oops")
