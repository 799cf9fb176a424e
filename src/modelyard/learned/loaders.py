"""Readers for outcome files: the long JSONL layout and RouterBench's wide table.

JSONL, one object per line (`.jsonl` or `.jsonl.gz`)::

    {"prompt_id": 7, "prompt": "…" | [messages], "model": "gpt-4o", "quality": 0.8,
     "cost_usd": 0.0012 | ("input_tokens": 100, "output_tokens": 300),
     "response": "…"?, "source": "…"?, "pred": "C" | 18 | null?, "answer": "C"?}

`pred` is the model's final answer as the benchmark's own scorer parsed it (an
option letter, a number), `answer` the gold answer; both optional.

RouterBench (`.pkl` / `.parquet`): one row per prompt with columns `sample_id`,
`prompt`, `eval_name`, and per model `<model>`, `<model>|total_cost`,
`<model>|model_response`. Reading those files needs pandas (pickle) or pyarrow /
pandas (parquet), which modelyard does not depend on; `outcomes_from_routerbench`
converts rows already in memory.

Every malformed row fails with a `ValueError` naming the file, the line (or row)
and the field.
"""

from __future__ import annotations

import ast
import gzip
import importlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.learned.outcomes import NANO, Format, OutcomePrompt, OutcomeSet

_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".ndjson.gz")
_ROUTERBENCH_SUFFIXES = (".pkl", ".pickle", ".parquet")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MILLION = Decimal(1_000_000)


def resolve_path(path: Path, fmt: Format) -> tuple[Path, Format, str]:
    """(file, concrete format, default dataset name) for a file or a dataset folder."""
    if path.is_dir():
        found = sorted(
            p
            for p in path.glob("outcomes.*")
            if p.name.endswith(_JSONL_SUFFIXES + _ROUTERBENCH_SUFFIXES)
        )
        if len(found) != 1:
            raise ValueError(
                f"{path}: expected exactly one outcomes.jsonl[.gz] / .pkl / .parquet file in "
                f"the folder, found {[p.name for p in found] or 'none'}"
            )
        file, name = found[0], path.name
    elif path.is_file():
        file = path
        name = path.parent.name if path.name.startswith("outcomes.") else _stem(path)
    else:
        raise ValueError(f"{path}: no such file or folder")
    if fmt == "auto":
        if file.name.endswith(_JSONL_SUFFIXES):
            fmt = "jsonl"
        elif file.name.endswith(_ROUTERBENCH_SUFFIXES):
            fmt = "routerbench"
        else:
            raise ValueError(
                f"{file}: cannot tell the layout from the name; pass fmt='jsonl' or "
                "'routerbench' (--format)"
            )
    return file, fmt, name


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".ndjson", ".json", ".parquet", ".pkl", ".pickle"):
        name = name.removesuffix(suffix)
    return name


class _Builder:
    """Collects cells (prompt, model) in first-seen order, then makes dense arrays."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.prompts: dict[str, OutcomePrompt] = {}
        self.models: dict[str, None] = {}
        self.cells: dict[tuple[str, str], tuple[float, Decimal | None, int, int]] = {}
        self.responses: dict[tuple[str, str], str] = {}
        self.preds: dict[tuple[str, str], str] = {}
        self.answers: dict[str, str] = {}

    def add_prompt(self, prompt: OutcomePrompt, where: str) -> None:
        seen = self.prompts.get(prompt.id)
        if seen is None:
            self.prompts[prompt.id] = prompt
        elif seen.messages != prompt.messages:
            raise ValueError(
                f"{where}: prompt_id {prompt.id!r} was given a different prompt before"
            )

    def add_cell(
        self,
        key: tuple[str, str],
        quality: float,
        cost: Decimal | None,
        tokens: tuple[int, int],
        where: str,
    ) -> None:
        if key in self.cells:
            raise ValueError(
                f"{where}: duplicate outcome for prompt {key[0]!r} and model {key[1]!r}"
            )
        self.models.setdefault(key[1], None)
        self.cells[key] = (quality, cost, tokens[0], tokens[1])

    def build(self) -> OutcomeSet:
        if not self.cells:
            raise ValueError(f"{self.name}: no outcomes found")
        prompts, models = tuple(self.prompts.values()), tuple(self.models)
        rows = {p.id: i for i, p in enumerate(prompts)}
        cols = {m: j for j, m in enumerate(models)}
        shape = (len(prompts), len(models))
        quality, cost = np.full(shape, np.nan), np.full(shape, np.nan)
        tin, tout = np.full(shape, -1, dtype=np.int64), np.full(shape, -1, dtype=np.int64)
        exact: dict[tuple[str, str], Decimal] = {}
        for (pid, model), (q, c, i, o) in self.cells.items():
            r, k = rows[pid], cols[model]
            quality[r, k], tin[r, k], tout[r, k] = q, i, o
            if c is not None:
                cost[r, k] = float(c)
                exact[(pid, model)] = c
        return OutcomeSet(
            self.name,
            prompts,
            models,
            quality,
            cost,
            tin,
            tout,
            self.responses,
            exact,
            preds=self.preds,
            answers=self.answers,
        )


def _open_lines(path: Path) -> Iterator[str]:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            yield from fh
    else:
        with path.open(encoding="utf-8") as fh:
            yield from fh


def load_jsonl(
    path: Path, *, name: str, prices: Mapping[str, tuple[Any, Any]] | None = None
) -> OutcomeSet:
    """Read the long JSONL layout (see the module docstring)."""
    builder = _Builder(name)
    price_table = _price_table(prices or {})
    for number, line in enumerate(_open_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            row = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        _add_jsonl_row(builder, row, where, price_table)
    return builder.build()


def _add_jsonl_row(
    builder: _Builder,
    row: dict[str, Any],
    where: str,
    prices: Mapping[str, tuple[Decimal, Decimal]],
) -> None:
    for required in ("prompt_id", "prompt", "model", "quality"):
        if required not in row:
            raise ValueError(f"{where}: missing field '{required}'")
    pid = _prompt_id(row["prompt_id"], where)
    model = row["model"]
    if not isinstance(model, str) or not model:
        raise ValueError(f"{where}: field 'model' must be a non-empty string")
    source = row.get("source", builder.name)
    if not isinstance(source, str):
        raise ValueError(f"{where}: field 'source' must be a string")
    builder.add_prompt(OutcomePrompt(pid, to_messages(row["prompt"], where), source), where)
    quality = _quality(row["quality"], f"{where}: field 'quality'")
    tokens = (_tokens(row, "input_tokens", where), _tokens(row, "output_tokens", where))
    cost = _jsonl_cost(row, model, tokens, prices, where)
    builder.add_cell((pid, model), quality, cost, tokens, where)
    response = row.get("response")
    if response is not None:
        if not isinstance(response, str):
            raise ValueError(f"{where}: field 'response' must be a string")
        builder.responses[(pid, model)] = response
    pred = _answer_text(row.get("pred"), f"{where}: field 'pred'")
    if pred is not None:
        builder.preds[(pid, model)] = pred
    answer = _answer_text(row.get("answer"), f"{where}: field 'answer'")
    if answer is not None and builder.answers.setdefault(pid, answer) != answer:
        raise ValueError(f"{where}: prompt_id {pid!r} was given a different 'answer' before")


def _answer_text(value: Any, where: str) -> str | None:
    """A parsed or gold answer as text: a string or a number (JSON null = none)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"{where} must be a string, a number or null, got {value!r}")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    return str(value)


def _jsonl_cost(
    row: Mapping[str, Any],
    model: str,
    tokens: tuple[int, int],
    prices: Mapping[str, tuple[Decimal, Decimal]],
    where: str,
) -> Decimal:
    if row.get("cost_usd") is not None:
        return _money(row["cost_usd"], f"{where}: field 'cost_usd'")
    if tokens[0] < 0 or tokens[1] < 0:
        raise ValueError(
            f"{where}: needs 'cost_usd', or 'input_tokens' and 'output_tokens' with prices"
        )
    if model not in prices:
        raise ValueError(
            f"{where}: no 'cost_usd' and no price for model {model!r}; pass prices "
            f"(known: {', '.join(sorted(prices)) or 'none'})"
        )
    p_in, p_out = prices[model]
    return ((tokens[0] * p_in + tokens[1] * p_out) / MILLION).quantize(NANO)


def _price_table(prices: Mapping[str, tuple[Any, Any]]) -> dict[str, tuple[Decimal, Decimal]]:
    table: dict[str, tuple[Decimal, Decimal]] = {}
    for model, pair in prices.items():
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"prices.{model}: expected ($/Mtok input, $/Mtok output)")
        table[model] = (
            _money(pair[0], f"prices.{model}.input"),
            _money(pair[1], f"prices.{model}.output"),
        )
    return table


def _prompt_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{where}: field 'prompt_id' must be a string or an integer")
    return str(value)


def _tokens(row: Mapping[str, Any], key: str, where: str) -> int:
    value = row.get(key)
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: field '{key}' must be a non-negative integer, got {value!r}")
    return value


def _quality(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{where} must be a number in [0, 1], got {value!r}")
    q = float(value)
    if not 0.0 <= q <= 1.0:  # also rejects NaN
        raise ValueError(f"{where} must be a number in [0, 1], got {value!r}")
    return q


def _money(value: Any, where: str) -> Decimal:
    """Dollars, exactly as written (a JSON number is read through its text)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"{where} must be a non-negative number of dollars, got {value!r}")
    try:
        money = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{where} is not a number: {value!r}") from None
    if not money.is_finite() or money < 0:
        raise ValueError(f"{where} must be a non-negative number of dollars, got {value!r}")
    return money.quantize(NANO)


def to_messages(prompt: Any, where: str) -> tuple[dict[str, Any], ...]:
    """A prompt as chat messages: a string is one user turn; a list of strings is a
    series of user turns (RouterBench's multi-turn prompts); a list of
    {role, content} objects is taken as is."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError(f"{where}: field 'prompt' is empty")
        return ({"role": "user", "content": prompt},)
    if isinstance(prompt, Sequence) and prompt:
        return tuple(_message(m, f"{where}: field 'prompt'[{i}]") for i, m in enumerate(prompt))
    raise ValueError(f"{where}: field 'prompt' must be a string or a non-empty list of messages")


def _message(item: Any, where: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"role": "user", "content": item}
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be a string or a {{role, content}} object")
    role, content = item.get("role"), item.get("content")
    if role not in _ROLES:
        raise ValueError(f"{where}.role must be one of {', '.join(sorted(_ROLES))}, got {role!r}")
    if not isinstance(content, str | list):
        raise ValueError(f"{where}.content must be a string or a list of content parts")
    return {"role": role, "content": content}


# ---- RouterBench -------------------------------------------------------------

_COST = "|total_cost"
_RESPONSE = "|model_response"


def load_routerbench(path: Path, *, name: str) -> OutcomeSet:
    """Read a RouterBench `.pkl` (pandas) or `.parquet` (pyarrow or pandas) table."""
    records = _read_parquet(path) if path.name.endswith(".parquet") else _read_pickle(path)
    return outcomes_from_routerbench(records, name=name, where=str(path))


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        pq: Any = importlib.import_module("pyarrow.parquet")
    except ImportError:
        pq = None
    if pq is not None:
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    pd = _pandas(path, "parquet files need pyarrow or pandas (pip install pyarrow)")
    return list(pd.read_parquet(path).to_dict("records"))


def _read_pickle(path: Path) -> list[dict[str, Any]]:
    # A RouterBench pickle is a pickled pandas DataFrame: only pandas can read it.
    # Unpickling runs code from the file, so only load files you trust.
    pd = _pandas(path, "RouterBench pickles are pandas DataFrames: pip install pandas")
    return list(pd.read_pickle(path).to_dict("records"))


def _pandas(path: Path, hint: str) -> Any:
    try:
        return importlib.import_module("pandas")
    except ImportError:
        raise ValueError(f"{path}: cannot read it without pandas; {hint}") from None


def outcomes_from_routerbench(
    records: Sequence[Mapping[str, Any]], *, name: str, where: str = "routerbench"
) -> OutcomeSet:
    """Convert RouterBench rows (dicts, one per prompt) to an `OutcomeSet`. The
    models are the columns that have a `<model>|total_cost` partner; a row's
    `eval_name` becomes its prompts' `source`."""
    if not records:
        raise ValueError(f"{where}: the table is empty")
    columns = list(records[0])
    for required in ("sample_id", "prompt", "eval_name"):
        if required not in columns:
            raise ValueError(f"{where}: missing column '{required}' (columns: {columns})")
    models = [c for c in columns if f"{c}{_COST}" in columns]
    if not models:
        raise ValueError(f"{where}: no model columns (expected '<model>' and '<model>|total_cost')")
    builder = _Builder(name)
    for number, row in enumerate(records):
        _add_routerbench_row(builder, row, models, f"{where}: row {number}")
    return builder.build()


def _add_routerbench_row(
    builder: _Builder, row: Mapping[str, Any], models: Sequence[str], where: str
) -> None:
    pid = _prompt_id(row.get("sample_id"), where)
    source = row.get("eval_name")
    if not isinstance(source, str) or not source:
        raise ValueError(f"{where}: column 'eval_name' must be a non-empty string")
    prompt = _routerbench_prompt(row.get("prompt"))
    builder.add_prompt(OutcomePrompt(pid, to_messages(prompt, where), source), where)
    for model in models:
        quality = row.get(model)
        if quality is None or (isinstance(quality, float) and math.isnan(quality)):
            continue  # this model has no outcome on this prompt
        q = _quality(_plain(quality), f"{where}: column '{model}'")
        cost = _money(_plain(row.get(f"{model}{_COST}")), f"{where}: column '{model}{_COST}'")
        builder.add_cell((pid, model), q, cost, (-1, -1), where)
        response = row.get(f"{model}{_RESPONSE}")
        if isinstance(response, str):
            builder.responses[(pid, model)] = response


def _routerbench_prompt(prompt: Any) -> Any:
    """RouterBench stores multi-turn prompts (MT-Bench) as the text of a Python list of
    user turns, e.g. "['Write a poem.', 'Shorter.']"; arrays come from pandas/pyarrow."""
    tolist = getattr(prompt, "tolist", None)
    if not isinstance(prompt, str) and tolist is not None:
        return tolist()
    if isinstance(prompt, str) and prompt[:2] in ("['", '["') and prompt.endswith("]"):
        try:
            turns = ast.literal_eval(prompt)
        except (ValueError, SyntaxError):
            return prompt
        if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
            return turns
    return prompt


def _plain(value: Any) -> Any:
    """numpy scalars from a DataFrame → Python numbers."""
    return value.item() if hasattr(value, "item") and not isinstance(value, Decimal) else value
