"""Paired bootstrap over test prompts: is a router really better than a baseline?

Two routers evaluated on the same test prompts are compared by resampling the
prompts with replacement (the same resample for both: paired), recomputing each
one's figure on the resample, and reading the 2.5% and 97.5% quantiles of the
difference. A router is called better only when the whole interval is above zero.

A curve (a router swept over its knobs, or the single models for the random mix) is
held as per-prompt quality and cost matrices (knob × prompt); a resample is a vector
of counts per prompt, so every knob's resampled mean is one matrix product and a
thousand resamples of 7,000 prompts take well under a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.evaluation.harness import RoutedRun
from modelyard.evaluation.metrics import PER_1K, Point, aiq

Floats = npt.NDArray[np.float64]
DRAWS = 1000
LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class Curve:
    """Per-prompt quality and cost ($ per request) of each point of a curve, prompts
    in one shared order (`rows`)."""

    rows: npt.NDArray[np.int64]
    quality: Floats  # (points, prompts)
    cost: Floats  # (points, prompts)

    @classmethod
    def of(cls, runs: Sequence[RoutedRun]) -> Curve:
        """From runs over the same prompts (each run one point), sorted by row."""
        order = np.argsort(runs[0].rows, kind="stable")
        rows = runs[0].rows[order]
        for run in runs[1:]:
            if not np.array_equal(np.sort(run.rows), rows):
                raise ValueError("the runs of a curve must cover the same prompts")
        quality = np.stack([r.quality[np.argsort(r.rows, kind="stable")] for r in runs])
        cost = np.stack([r.cost[np.argsort(r.rows, kind="stable")] for r in runs])
        return cls(rows, quality, cost)

    def __add__(self, other: Curve) -> Curve:
        """Both curves' points (a router's families together: its best frontier)."""
        if not np.array_equal(self.rows, other.rows):
            raise ValueError("curves over different prompts cannot be joined")
        return Curve(
            self.rows,
            np.concatenate([self.quality, other.quality]),
            np.concatenate([self.cost, other.cost]),
        )

    def points(self, weights: Floats) -> list[Point]:
        """The curve's points on a resample given as counts per prompt."""
        total = float(weights.sum())
        q = self.quality @ weights / total
        c = self.cost @ weights / total * PER_1K
        return [Point("", float(ci), float(qi)) for ci, qi in zip(c, q, strict=True)]


def resamples(n: int, draws: int = DRAWS, seed: int = 0) -> Floats:
    """`draws` bootstrap resamples of n prompts, as counts per prompt (draws × n)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=draws)
    return np.asarray(counts, dtype=np.float64)


Statistic = Callable[[Curve, Floats], float]


def aiq_between(lo: float, hi: float) -> Statistic:
    """AIQ over the cost range [lo, hi] per 1k requests, as a statistic of a curve."""
    return lambda curve, weights: aiq(curve.points(weights), lo, hi)


def paired_interval(
    a: Curve, b: Curve, statistic: Statistic, samples: Floats, level: float = LEVEL
) -> dict[str, Any]:
    """statistic(a) − statistic(b): the estimate on the prompts as they are, and the
    paired bootstrap interval; `better` when the interval lies wholly above zero."""
    if not np.array_equal(a.rows, b.rows):
        raise ValueError("a paired comparison needs both curves on the same prompts")
    ones = np.ones(a.quality.shape[1])
    estimate = statistic(a, ones) - statistic(b, ones)
    diffs = np.array([statistic(a, w) - statistic(b, w) for w in samples])
    tail = (1.0 - level) / 2.0
    lo, hi = (float(x) for x in np.quantile(diffs, [tail, 1.0 - tail]))
    return {
        "estimate": float(estimate),
        "low": lo,
        "high": hi,
        "level": level,
        "draws": len(samples),
        "better": lo > 0.0,
        "worse": hi < 0.0,
    }
