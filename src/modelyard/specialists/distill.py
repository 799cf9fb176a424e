"""Distillation: a training set from answers a stronger model already gave.

The executor captures, for tasks listed under `capture:`, each successful
request's messages and the answering model's text (`modelyard.ledger.records.Exchange`).
Here each answer is parsed into one of a known label set:

- the whole answer is a label, ignoring case, surrounding whitespace, quotes, a
  trailing full stop and how words are separated ("Card arrival." -> card_arrival);
- or it is a JSON object with a "label" field (also inside a ```json fence);

anything else (a sentence, an unknown label) is counted as unparsed and left out.
The specialist's own answers are never used as teacher labels. The text trained on
is `modelyard.specialists.text.request_text`: what the specialist reads when serving.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelyard.specialists.data import DataError, LabelledData
from modelyard.specialists.text import request_text

SPECIALIST_PREFIX = "specialist/"
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_STRIP = " \t\r\n\"'`."
_SEPARATORS = re.compile(r"[\s_\-]+")


class ExchangeLike(Protocol):
    """The fields of `modelyard.ledger.records.Exchange` distillation reads."""

    @property
    def model_id(self) -> str: ...
    @property
    def messages(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def response(self) -> str | None: ...


class LabelParser:
    """Maps free-form answers onto a label set; `None` when an answer is not a label."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)
        self._by_key = {_key(label): label for label in labels}

    def parse(self, answer: str | None) -> str | None:
        if not answer:
            return None
        text = answer.strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                return None
            value = obj.get("label") if isinstance(obj, dict) else None
            return self._by_key.get(_key(value)) if isinstance(value, str) else None
        return self._by_key.get(_key(text))


def _key(text: str) -> str:
    """Case, surrounding quotes/dots, and the spelling of separators do not matter:
    "Card Arrival", "card-arrival" and "card_arrival" are one label."""
    return " ".join(_SEPARATORS.split(text.strip(_STRIP).lower())).strip()


@dataclass(frozen=True, slots=True)
class DistillSet:
    """The training set distilled from exchanges, and what could not be used."""

    data: LabelledData | None
    total: int
    unparsed: int
    skipped_own: int
    examples_unparsed: tuple[str, ...]
    teachers: Counter[str]

    @property
    def distribution(self) -> Counter[str]:
        return self.data.distribution() if self.data is not None else Counter()


def distill(
    exchanges: Iterable[ExchangeLike],
    labels: Sequence[str],
    *,
    source: str,
    teacher: str | None = None,
) -> DistillSet:
    """Parse each exchange's answer into a label; keep (request text, label) pairs.

    `teacher` keeps only one model's answers. Exchanges answered by a specialist are
    skipped: a model must not be trained on its own guesses."""
    parser = LabelParser(labels)
    texts: list[str] = []
    found: list[str] = []
    lines: list[int] = []
    total = unparsed = own = 0
    bad_examples: list[str] = []
    teachers: Counter[str] = Counter()
    for number, exchange in enumerate(exchanges, start=1):
        if exchange.model_id.startswith(SPECIALIST_PREFIX):
            own += 1
            continue
        if teacher is not None and exchange.model_id != teacher:
            continue
        total += 1
        label = parser.parse(exchange.response)
        text = request_text(exchange.messages)
        if label is None or not text:
            unparsed += 1
            if len(bad_examples) < 3:
                bad_examples.append((exchange.response or "(no answer)")[:80])
            continue
        texts.append(text)
        found.append(label)
        lines.append(number)
        teachers[exchange.model_id] += 1
    data = LabelledData(tuple(texts), tuple(found), tuple(lines), source) if texts else None
    return DistillSet(data, total, unparsed, own, tuple(bad_examples), teachers)


def parse_label_set(spec: str) -> tuple[str, ...]:
    """Labels from `--labels`: a comma-separated list, a JSON list, or a file of
    either (one label per line also works)."""
    from pathlib import Path

    raw = spec
    path = Path(spec).expanduser()
    if path.is_file():
        raw = path.read_text(encoding="utf-8")
    raw = raw.strip()
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"--labels: not a valid JSON list ({exc.msg})") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise DataError("--labels: the JSON must be a list of strings")
        labels = [i.strip() for i in items]
    else:
        labels = [p.strip() for p in re.split(r"[,\n]", raw)]
    labels = [label for label in labels if label]
    if len(set(labels)) < 2:
        raise DataError(f"--labels: need at least 2 distinct labels, got {len(set(labels))}")
    return tuple(dict.fromkeys(labels))
