"""Outcome data: per prompt × per model, how good the answer was and what it cost.

An `OutcomeSet` is the one in-memory shape every learned router trains on and the
replay harness answers from, whatever file it came from (see `modelyard.learned.
loaders` for the JSONL and RouterBench layouts). Quality and cost are dense
(prompts × models) arrays, NaN where a model has no outcome for a prompt, so the
predictors and the metrics are vectorised; the exact recorded cost of each cell is
kept as a Decimal because the ledger bills exact money.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from modelyard.embeddings import conversation_text

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Format = Literal["auto", "jsonl", "routerbench"]

# Costs are recorded to the nano-dollar, as the ledger stores them.
NANO = Decimal("1e-9")


@dataclass(frozen=True, slots=True)
class OutcomePrompt:
    """One prompt: its id, the conversation it is (OpenAI-style messages) and where it
    comes from (a benchmark task or the dataset name), for cross-dataset splits."""

    id: str
    messages: tuple[dict[str, Any], ...]
    source: str

    @property
    def text(self) -> str:
        """What the prompt is embedded as: the whole conversation."""
        return conversation_text(self.messages)


@dataclass(frozen=True, eq=False)
class OutcomeSet:
    """Outcomes of `models` on `prompts`. Row i of every array is prompts[i], column j
    is models[j]. quality: 0..1, NaN = no outcome; cost_usd: dollars, NaN = unknown;
    input/output tokens: -1 = unknown. `responses` maps (prompt id, model) → answer;
    `preds` (prompt id, model) → the final answer parsed from it (a letter, a number),
    where the data has one; `answers` prompt id → the gold answer."""

    name: str
    prompts: tuple[OutcomePrompt, ...]
    models: tuple[str, ...]
    quality: Floats
    cost_usd: Floats
    input_tokens: Ints
    output_tokens: Ints
    responses: dict[tuple[str, str], str] = field(default_factory=dict)
    exact_cost: dict[tuple[str, str], Decimal] = field(default_factory=dict, repr=False)
    preds: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    answers: dict[str, str] = field(default_factory=dict, repr=False)
    _rows: dict[str, int] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.prompts), len(self.models))
        for label in ("quality", "cost_usd", "input_tokens", "output_tokens"):
            got = getattr(self, label).shape
            if got != shape:
                raise ValueError(f"{self.name}: {label} has shape {got}, expected {shape}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"{self.name}: duplicate model names in {list(self.models)}")
        self._rows.update({p.id: i for i, p in enumerate(self.prompts)})
        if len(self._rows) != len(self.prompts):
            raise ValueError(f"{self.name}: duplicate prompt ids")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def texts(self) -> list[str]:
        """The text each prompt is embedded as, in row order."""
        return [p.text for p in self.prompts]

    @property
    def sources(self) -> list[str]:
        return [p.source for p in self.prompts]

    def index(self, prompt_id: str) -> int:
        """The row of `prompt_id`."""
        try:
            return self._rows[prompt_id]
        except KeyError:
            raise KeyError(f"{self.name}: no prompt with id {prompt_id!r}") from None

    def model_index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise KeyError(
                f"{self.name}: no model {model!r} (models: {', '.join(self.models)})"
            ) from None

    def cost_decimal(self, prompt_index: int, model: str) -> Decimal:
        """The exact recorded cost of `model` on prompt row `prompt_index`, in dollars."""
        key = (self.prompts[prompt_index].id, model)
        if key in self.exact_cost:
            return self.exact_cost[key]
        value = float(self.cost_usd[prompt_index, self.model_index(model)])
        if np.isnan(value):
            raise KeyError(f"{self.name}: no recorded cost for {model!r} on prompt {key[0]!r}")
        return Decimal(repr(value)).quantize(NANO)

    def subset(self, indices: Sequence[int] | npt.NDArray[np.integer[Any]]) -> OutcomeSet:
        """The rows `indices` (in that order), everything else unchanged."""
        rows = np.asarray(indices, dtype=np.int64)
        prompts = tuple(self.prompts[int(i)] for i in rows)
        ids = {p.id for p in prompts}
        return OutcomeSet(
            name=self.name,
            prompts=prompts,
            models=self.models,
            quality=self.quality[rows],
            cost_usd=self.cost_usd[rows],
            input_tokens=self.input_tokens[rows],
            output_tokens=self.output_tokens[rows],
            responses={k: v for k, v in self.responses.items() if k[0] in ids},
            exact_cost={k: v for k, v in self.exact_cost.items() if k[0] in ids},
            preds={k: v for k, v in self.preds.items() if k[0] in ids},
            answers={k: v for k, v in self.answers.items() if k in ids},
        )

    def without_models(self, names: Iterable[str]) -> OutcomeSet:
        """The same prompts without the columns of `names` (each must exist)."""
        drop = set(names)
        unknown = sorted(drop - set(self.models))
        if unknown:
            raise KeyError(
                f"{self.name}: unknown model(s) {', '.join(unknown)} "
                f"(models: {', '.join(self.models)})"
            )
        return self.with_models([m for m in self.models if m not in drop])

    def with_models(self, names: Sequence[str]) -> OutcomeSet:
        """Only the columns `names`, in that order."""
        cols = [self.model_index(m) for m in names]
        keep = set(names)
        return OutcomeSet(
            name=self.name,
            prompts=self.prompts,
            models=tuple(names),
            quality=self.quality[:, cols],
            cost_usd=self.cost_usd[:, cols],
            input_tokens=self.input_tokens[:, cols],
            output_tokens=self.output_tokens[:, cols],
            responses={k: v for k, v in self.responses.items() if k[1] in keep},
            exact_cost={k: v for k, v in self.exact_cost.items() if k[1] in keep},
            preds={k: v for k, v in self.preds.items() if k[1] in keep},
            answers=self.answers,
        )

    def renamed_models(self, names: Mapping[str, str]) -> OutcomeSet:
        """The same outcomes with models renamed (old name → new name; others kept)."""
        new = tuple(names.get(m, m) for m in self.models)
        if len(set(new)) != len(new):
            raise ValueError(f"{self.name}: renaming models would merge two of them")

        def key(k: tuple[str, str]) -> tuple[str, str]:
            return (k[0], names.get(k[1], k[1]))

        return OutcomeSet(
            name=self.name,
            prompts=self.prompts,
            models=new,
            quality=self.quality,
            cost_usd=self.cost_usd,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            responses={key(k): v for k, v in self.responses.items()},
            exact_cost={key(k): v for k, v in self.exact_cost.items()},
            preds={key(k): v for k, v in self.preds.items()},
            answers=self.answers,
        )

    def without_responses(self) -> OutcomeSet:
        """The same outcomes without the answer texts: what routers are evaluated on
        (a replayed answer is then empty), a fraction of the memory, quick to send to
        worker processes."""
        return OutcomeSet(
            name=self.name,
            prompts=self.prompts,
            models=self.models,
            quality=self.quality,
            cost_usd=self.cost_usd,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            exact_cost=self.exact_cost,
            preds=self.preds,
            answers=self.answers,
        )

    def content_hash(self) -> str:
        """A SHA-256 of what a predictor learns from (prompt texts, models, quality), so
        an artifact records exactly which data trained it."""
        h = hashlib.sha256()
        h.update(json.dumps([self.models, [p.id for p in self.prompts]]).encode())
        for text in self.texts:
            h.update(text.encode())
            h.update(b"\0")
        h.update(np.ascontiguousarray(self.quality, dtype="<f8").tobytes())
        return h.hexdigest()


def load_outcomes(
    path: str | Path,
    fmt: Format = "auto",
    *,
    prices: Mapping[str, tuple[Any, Any]] | None = None,
    name: str | None = None,
) -> OutcomeSet:
    """Read an outcome file (or a dataset folder holding one `outcomes.*` file).

    fmt "jsonl": one JSON object per line (`.gz` ok), the long layout; "routerbench":
    the RouterBench wide table (`.pkl` / `.parquet`, needs pandas or pyarrow);
    "auto" picks by file name. `prices` (model → ($/Mtok in, $/Mtok out)) prices
    rows that give tokens but no cost. `name` defaults to the folder name for an
    `outcomes.*` file, else the file's stem."""
    from modelyard.learned.loaders import load_jsonl, load_routerbench, resolve_path

    file, fmt_found, default_name = resolve_path(Path(path), fmt)
    if fmt_found == "jsonl":
        return load_jsonl(file, name=name or default_name, prices=prices)
    return load_routerbench(file, name=name or default_name)
