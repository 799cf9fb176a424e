"""Extractors: the final answer inside a model's text, as a comparable key.

Each extractor maps an answer's text to a normalised key (`"C"`, `"1000"`,
`"positive"`, `'{"x": 1}'`) or None when it finds nothing. None is never an error:
the agreement verifier counts such an answer as agreeing with nobody. Extractors are
registered under the `modelyard.extractors` entry-point group (built-ins too), as
functions `(text, options) -> str | None`::

    [project.entry-points."modelyard.extractors"]
    sql = "my_pkg.extract:final_sql"
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """What a configured extractor needs: `field` (a dotted JSON path, for `json`)
    and `labels` (the allowed labels, for `label`)."""

    field: str = "answer"
    labels: tuple[str, ...] = ()


Extractor = Callable[[str, ExtractOptions], str | None]

# "The answer is (C)", "Answer: C", "**Answer:** (c)", "final answer is C."
# The word is case-blind; a bare letter must be a capital ("the answer is a bit…").
_CHOICE = re.compile(
    r"(?i:answer\W{0,6}(?:is\W{0,4}|:\W{0,4})?)(?:\(([A-Ja-j])\)|([A-J])(?![A-Za-z0-9]))"
)
_BARE_CHOICE = re.compile(r"\s*\(?([A-Ja-j])\)?[.:]?\s*")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")
_GSM8K_FINAL = re.compile(r"####\s*(" + _NUMBER.pattern + ")")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_FENCED_JSON = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_WORD = re.compile(r"[\w'-]+")


def choice(text: str, _options: ExtractOptions | None = None) -> str | None:
    """A multiple-choice letter (A-J): the last 'answer is (X)' / 'Answer: X', or an
    answer that is nothing but a letter."""
    matches = list(_CHOICE.finditer(text))
    if matches:
        last = matches[-1]
        return (last.group(1) or last.group(2)).upper()
    bare = _BARE_CHOICE.fullmatch(text)
    return bare.group(1).upper() if bare else None


def normalise_number(raw: str) -> str | None:
    """'1,000' → '1000', '$5' → '5', '5.0' → '5', '-0.50' → '-0.5'; None if not a number."""
    cleaned = raw.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def number(text: str, options: ExtractOptions | None = None) -> str | None:
    """A number: a JSON `answer` field, GSM8K's '#### N', LaTeX '\\boxed{N}', else the
    last number in the text."""
    options = options or ExtractOptions()
    value = _json_value(text, options.field)
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        found = normalise_number(str(value))
        if found is not None:
            return found
    for pattern in (_GSM8K_FINAL, _BOXED):
        if m := pattern.search(text):
            found = normalise_number(m.group(1))
            if found is not None:
                return found
    numbers = _NUMBER.findall(text)
    return normalise_number(numbers[-1]) if numbers else None


def label(text: str, options: ExtractOptions | None = None) -> str | None:
    """One of the configured labels (the last one the text names, case-insensitive, as
    a whole word); without labels, a short answer (≤ 5 words) itself, lower-cased."""
    options = options or ExtractOptions()
    if options.labels:
        found: tuple[int, str] | None = None
        for name in options.labels:
            for m in re.finditer(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE):
                if found is None or m.start() >= found[0]:
                    found = (m.start(), name.casefold())
        return found[1] if found else None
    words = _WORD.findall(text.strip().splitlines()[0] if text.strip() else "")
    return " ".join(words).casefold() if 0 < len(words) <= 5 else None


def json_field(text: str, options: ExtractOptions | None = None) -> str | None:
    """The value at `options.field` (dotted path) of the JSON object in the answer
    (bare, or in a ```json fence), as canonical JSON; numbers normalised."""
    options = options or ExtractOptions()
    value = _json_value(text, options.field)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return normalise_number(str(value))
    if isinstance(value, str):
        return normalise_number(value) or value.strip().casefold()
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def auto(text: str, options: ExtractOptions | None = None) -> str | None:
    """A choice letter, else a JSON `answer` field, else a number; None for free text."""
    options = options or ExtractOptions()
    if (letter := choice(text, options)) is not None:
        return f"choice:{letter}"
    if (field := json_field(text, options)) is not None:
        return f"json:{field}"
    if (num := number(text, options)) is not None:
        return f"number:{num}"
    return None


def normalise_parsed(parsed: str) -> str:
    """An already-parsed answer (a dataset's `pred`) as a key: numbers normalised,
    case and surrounding whitespace ignored."""
    return normalise_number(parsed) or parsed.strip().casefold()


def parse_json(text: str) -> Any:
    """The JSON document in an answer: the whole text, a ```json fence, or the first
    {...} span; raises ValueError when there is none."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCED_JSON.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError("no JSON document in the answer")


def _json_value(text: str, path: str) -> Any:
    try:
        value = parse_json(text)
    except ValueError:
        return None
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


BUILTIN: dict[str, Extractor] = {
    "auto": auto,
    "choice": choice,
    "number": number,
    "label": label,
    "json": json_field,
}
