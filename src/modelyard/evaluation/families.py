"""Policy families and their knobs: utility λ, quality floor q, strong/weak threshold.

A knob grid is placed from the scorer's predictions on its TRAINING prompts only
(never the test prompts): λ values spread the predicted spend evenly
on a log scale, floors are quantiles of the predicted qualities, thresholds are
quantiles of the predicted strong-minus-weak gain so the strong model's share of
calls runs from all to none (RouteLLM's calibration). Knob `index` k means the same
calibrated level in every fold, which is how folds are pooled; every grid has exactly
`size` values (repeats allowed) so the indices line up.

Each family also says, vectorised, which model its policy picks for every prompt at
one knob value (`choose`), from the same predicted quality and expected cost the
Engine's dry run shows the policy. A sweep over every knob is then an array
operation; the evaluation still sends every prompt through the Engine at the
operating points it reports, and checks there that the Engine picked the same model
(`modelyard.evaluation.sweep`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

# Floors are kept where at most this share of calibration prompts would find no model
# predicted good enough (the `cheapest` policy refuses those requests).
FLOOR_MAX_UNSERVED = 0.05


@dataclass(frozen=True, slots=True)
class Predictions:
    """A scorer's view of some prompts: predicted quality and expected cost ($ per
    request) per model, columns in `models` order."""

    models: tuple[str, ...]
    quality: Floats
    cost: Floats

    def column(self, model: str) -> int:
        return self.models.index(model)

    def id_rank(self) -> Floats:
        """Each column's rank among the model ids: the policies' last tie-breaker."""
        order = sorted(range(len(self.models)), key=lambda j: self.models[j])
        rank = np.empty(len(self.models))
        rank[order] = np.arange(len(self.models))
        return rank


@dataclass(frozen=True, slots=True)
class Knob:
    """One value of one family's knob, as a named policy in the replay config."""

    family: str
    index: int
    value: float
    policy: str
    settings: dict[str, Any]


class Family(Protocol):
    @property
    def name(self) -> str: ...

    def grid(self, pred: Predictions, size: int) -> list[float]: ...

    def settings(self, value: float) -> dict[str, Any]: ...

    def choose(self, pred: Predictions, value: float) -> npt.NDArray[np.int64]:
        """Per prompt, the column the family's policy ranks first at knob `value`."""
        ...


def lexicographic_first(
    keys: list[Floats], eligible: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """Per row, the first eligible column by `keys` (smallest first, each key breaking
    the previous one's ties), as the policies sort their candidates. The last key
    should be unique per column; a row with nothing eligible gets column 0."""
    left = eligible.copy()
    for key in keys:
        masked = np.where(left, key, np.inf)
        left &= masked == masked.min(axis=1, keepdims=True)
    return np.asarray(np.argmax(left, axis=1), dtype=np.int64)


def knobs(family: Family, pred: Predictions, size: int) -> list[Knob]:
    """The family's calibrated knobs, each with its policy name and settings."""
    return [
        Knob(family.name, i, value, f"{family.name}#{i}", family.settings(value))
        for i, value in enumerate(family.grid(pred, size))
    ]


def _argmax_utility(pred: Predictions, lam: float) -> npt.NDArray[np.int64]:
    """`UtilityPolicy` with μ = 0: highest quality − λ·cost, then the smallest id."""
    utility = pred.quality - lam * pred.cost
    rank = np.broadcast_to(pred.id_rank(), utility.shape)
    return lexicographic_first([-utility, rank], np.ones(utility.shape, dtype=bool))


@dataclass(frozen=True, slots=True)
class UtilityFamily:
    """`utility` policy, quality − λ·expected cost (latency weight 0: the data has none)."""

    name: str = "utility"

    def grid(self, pred: Predictions, size: int) -> list[float]:
        """λ = 0 plus values whose predicted spend on the calibration prompts is spread
        evenly in log scale between the cheapest and the λ = 0 choice."""
        lams = np.concatenate([[0.0], np.geomspace(1e-2, 1e9, 400)])
        rows = np.arange(len(pred.quality))
        spend = np.array([pred.cost[rows, _argmax_utility(pred, lam)].mean() for lam in lams])
        spend = np.maximum(spend, 1e-15)
        targets = np.geomspace(spend.min(), spend.max(), max(size - 1, 1))
        picked = [float(lams[np.argmin(np.abs(np.log(spend) - np.log(t)))]) for t in targets]
        return sorted([0.0, *picked])

    def settings(self, value: float) -> dict[str, Any]:
        return {"type": "utility", "lambda_cost": value, "mu_latency": 0.0}

    def choose(self, pred: Predictions, value: float) -> npt.NDArray[np.int64]:
        return _argmax_utility(pred, value)


@dataclass(frozen=True, slots=True)
class FloorFamily:
    """`cheapest` policy with a quality floor: the cheapest model predicted ≥ q."""

    name: str = "floor"

    def grid(self, pred: Predictions, size: int) -> list[float]:
        """Floor 0 plus floors whose predicted spend on the calibration prompts is spread
        evenly in log scale, up to the floor that leaves 5% of them unserved."""
        ceiling = float(np.quantile(pred.quality.max(axis=1), FLOOR_MAX_UNSERVED))
        pool = pred.quality[pred.quality <= ceiling]
        if pool.size == 0:
            return [0.0] * size
        floors = np.unique(np.quantile(pool, np.linspace(0.0, 1.0, 400)))
        spend = np.maximum([self._spend(pred, q) for q in floors], 1e-15)
        targets = np.geomspace(spend.min(), spend.max(), max(size - 1, 1))
        picked = [float(floors[np.argmin(np.abs(np.log(spend) - np.log(t)))]) for t in targets]
        return sorted([0.0, *picked])

    @staticmethod
    def _spend(pred: Predictions, floor: float) -> float:
        """Mean expected cost of the cheapest model predicted ≥ floor (served prompts)."""
        cost = np.where(pred.quality >= floor, pred.cost, np.inf).min(axis=1)
        served = np.isfinite(cost)
        return float(cost[served].mean()) if served.any() else 0.0

    def settings(self, value: float) -> dict[str, Any]:
        return {"type": "cheapest", "min_quality": value}

    def choose(self, pred: Predictions, value: float) -> npt.NDArray[np.int64]:
        """`CheapestPolicy`: the cheapest model predicted >= the floor (then the higher
        quality, then the smaller id); with none, the best predicted (then the cheaper,
        then the candidates' own order, which is the column order)."""
        q, c = pred.quality, pred.cost
        rank = np.broadcast_to(pred.id_rank(), q.shape)
        kept = q >= value
        cheapest = lexicographic_first([c, -q, rank], kept)
        column = np.broadcast_to(np.arange(q.shape[1], dtype=np.float64), q.shape)
        best = lexicographic_first([-q, c, column], np.ones(q.shape, dtype=bool))
        return np.where(kept.any(axis=1), cheapest, best)


@dataclass(frozen=True, slots=True)
class ThresholdFamily:
    """Two-model `threshold` policy: the strong model when its predicted gain over the
    weak one is at least the threshold."""

    strong: str
    weak: str
    label: str = "threshold"

    @property
    def name(self) -> str:
        return self.label

    def grid(self, pred: Predictions, size: int) -> list[float]:
        """The policy sends to the strong model when gain > threshold: just below the
        smallest gain sends every prompt there, the largest gain none."""
        gain = pred.quality[:, pred.column(self.strong)] - pred.quality[:, pred.column(self.weak)]
        levels = np.quantile(gain, np.linspace(0.0, 1.0, max(size - 1, 1)))
        below = float(gain.min()) - max(1e-6, 0.01 * float(np.ptp(gain)))
        return sorted(float(np.clip(v, -1.0, 1.0)) for v in [below, *levels])

    def settings(self, value: float) -> dict[str, Any]:
        return {"type": "threshold", "strong": self.strong, "weak": self.weak, "threshold": value}

    def choose(self, pred: Predictions, value: float) -> npt.NDArray[np.int64]:
        s, w = pred.column(self.strong), pred.column(self.weak)
        gain = pred.quality[:, s] - pred.quality[:, w]
        return np.where(gain > value, s, w).astype(np.int64)
