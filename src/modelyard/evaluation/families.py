"""Policy families and their knobs: utility λ, quality floor q, strong/weak threshold.

A knob grid is placed from the scorer's predictions on its TRAINING prompts only
(never the test prompts): λ values spread the predicted spend evenly
on a log scale, floors are quantiles of the predicted qualities, thresholds are
quantiles of the predicted strong-minus-weak gain so the strong model's share of
calls runs from all to none (RouteLLM's calibration). Knob `index` k means the same
calibrated level in every fold, which is how folds are pooled; every grid has exactly
`size` values (repeats allowed) so the indices line up.
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


def knobs(family: Family, pred: Predictions, size: int) -> list[Knob]:
    """The family's calibrated knobs, each with its policy name and settings."""
    return [
        Knob(family.name, i, value, f"{family.name}#{i}", family.settings(value))
        for i, value in enumerate(family.grid(pred, size))
    ]


def _argmax_utility(pred: Predictions, lam: float) -> npt.NDArray[np.int64]:
    return np.asarray(np.argmax(pred.quality - lam * pred.cost, axis=1), dtype=np.int64)


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
