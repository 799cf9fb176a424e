"""The baselines a learned router has to beat: per-model means, and per-category means.

- `mean`: every model's mean quality on the training prompts, the same for every
  request. With the `cheapest` policy and a floor this is "the cheapest model whose
  mean clears the bar"; with `best`, "always the best model on average".
- `category`: every model's mean quality on the training prompts of the request's
  category (its declared `task`, e.g. `mmlu-pro/math`), shrunk toward the model's
  overall mean by `prior_weight` pseudo-prompts; a category never seen in training
  gets the overall mean. This is what a careful operator does by hand with a
  leaderboard per subject.

Both are `Scorer`s like the learned ones, so they go through the same policies, the
same Engine and the same evaluation; they need no encoder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from modelyard.catalog.cards import ModelCard
from modelyard.learned.outcomes import Ints, OutcomeSet
from modelyard.learned.predictors import Floats, column_means
from modelyard.learned.scorer import estimated_score
from modelyard.learned.train import median_output_tokens
from modelyard.routing.plan import Score
from modelyard.types import ChatRequest, Requirements

BaselineKind = Literal["mean", "category"]
BASELINES: tuple[BaselineKind, ...] = ("mean", "category")
# Pseudo-prompts of the overall mean mixed into each category's mean: a category with
# a dozen prompts is mostly its own, one with two mostly the overall mean.
PRIOR_WEIGHT = 5.0


class GroupMeanScorer:
    """Predicted quality = the model's training mean in the request's group (see the
    module docstring); cost and latency as `LearnedScorer` estimates them."""

    def __init__(
        self,
        kind: BaselineKind,
        models: Sequence[str],
        overall: Floats,
        by_group: Mapping[str, Floats],
        answer_tokens: Mapping[str, float],
    ) -> None:
        self.kind = kind
        self.models = tuple(models)
        self.overall = overall
        self.by_group = dict(by_group)
        self.answer_tokens = dict(answer_tokens)
        self._column = {m: j for j, m in enumerate(self.models)}
        self.version = f"{kind}-{len(self.by_group)}groups"

    def quality_row(self, task: str | None) -> Floats:
        """Predicted quality per model (column order) for a request of `task`."""
        if task is None:
            return self.overall
        return self.by_group.get(task, self.overall)

    def score(
        self, request: ChatRequest, req: Requirements, cards: Sequence[ModelCard]
    ) -> list[Score]:
        row = self.quality_row(req.task if self.kind == "category" else None)
        return [self._score(card, row, req) for card in cards]

    def _score(self, card: ModelCard, row: Floats, req: Requirements) -> Score:
        col = self._column.get(card.id)
        if col is None:
            return estimated_score(card, card.quality.for_task(req.task), req, None)
        return estimated_score(card, float(row[col]), req, self.answer_tokens.get(card.id))


def fit_baseline(
    kind: BaselineKind, data: OutcomeSet, rows: Sequence[int] | Ints
) -> GroupMeanScorer:
    """A `kind` baseline from the outcomes of prompts `rows` of `data`; a category is a
    prompt's `source`."""
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r} (known: {', '.join(BASELINES)})")
    idx = np.asarray(rows, dtype=np.int64)
    if len(idx) == 0:
        raise ValueError("no training prompts")
    quality = data.quality[idx]
    overall = column_means(quality)
    groups: dict[str, Floats] = {}
    if kind == "category":
        sources = np.array([data.prompts[int(i)].source for i in idx])
        for source in sorted(set(sources)):
            part = quality[sources == source]
            seen = (~np.isnan(part)).sum(axis=0)
            total = np.nansum(part, axis=0)
            groups[source] = (total + PRIOR_WEIGHT * overall) / (seen + PRIOR_WEIGHT)
    return GroupMeanScorer(
        kind, data.models, overall, groups, median_output_tokens(data.subset(idx))
    )
