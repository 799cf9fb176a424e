"""The cascade family's figures, from its per-split results (see `cascades`).

- points: each cost level pooled over the splits (as router knobs are), AIQ over the
  whole cost range and up to the best single model's cost;
- the operating point chosen on the training side, replayed through the Engine: its
  quality gap to the best single model with a paired bootstrap interval, its cost
  share, how often the Engine chose as the sweep did;
- hops: the share of requests answered at each step, and the verifier's escalation
  rate against the share of wrong first-tier answers it caught;
- AutoMix's IBC (incremental benefit per cost) of the operating point over its
  cheapest first-tier model, and ΔIBC against the straight line from that model to
  the last tier's (the single-model line).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelyard.evaluation.bootstrap import Curve, Statistic, paired_interval
from modelyard.evaluation.cascades import CascadeResult
from modelyard.evaluation.harness import RoutedRun
from modelyard.evaluation.metrics import PER_1K, Point, aiq, cost_at_quality
from modelyard.learned.outcomes import OutcomeSet

Floats = np.typing.NDArray[np.float64]


def _concat(runs: Sequence[RoutedRun]) -> RoutedRun:
    return RoutedRun(
        runs[0].policy,
        np.concatenate([r.rows for r in runs]),
        np.concatenate([r.model for r in runs]),
        np.concatenate([r.cost for r in runs]),
        np.concatenate([r.quality for r in runs]),
        np.concatenate([r.attempts for r in runs]),
        sum(r.failed for r in runs),
    )


def cascade_curve(results: Sequence[CascadeResult]) -> Curve:
    levels = len(results[0].runs)
    return Curve.of([_concat([r.runs[k] for r in results]) for k in range(levels)])


def summarise_cascades(
    results: Sequence[CascadeResult],
    data: OutcomeSet,
    singles: dict[str, RoutedRun],
    stats: dict[str, Statistic],
    samples: Floats,
    lo: float,
    hi: float,
    best: Point,
) -> dict[str, Any]:
    """Everything the report shows for the cascade family (plain data)."""
    results = [r for r in results if r.runs]
    if not results:
        return {"note": "no cheap models to cascade from"}
    levels = len(results[0].runs)
    pooled = [_concat([r.runs[k] for r in results]) for k in range(levels)]
    points = [
        Point(f"cascade #{k}", float(run.cost.mean()) * PER_1K, float(run.quality.mean()))
        for k, run in enumerate(pooled)
    ]
    reach = cost_at_quality(points, best.quality)
    return {
        "points": [p.as_dict() for p in points],
        "aiq": aiq(points, lo, hi),
        "aiq_to_best_single": aiq(points, lo, best.cost_per_1k),
        "curve_cost_share_of_best": reach / best.cost_per_1k if reach is not None else None,
        "levels_by_split": {r.split: [c.name for c in r.levels] for r in results},
        "selected": _selected(results, data, singles, samples),
        "stats": sorted(stats),
    }


def _selected(
    results: Sequence[CascadeResult],
    data: OutcomeSet,
    singles: dict[str, RoutedRun],
    samples: Floats,
) -> dict[str, Any]:
    chosen = _concat([r.runs[r.selected] for r in results])
    best = _concat([_rows(singles[r.best], r.runs[r.selected].rows) for r in results])
    gap = paired_interval(Curve.of([chosen]), Curve.of([best]), _mean_quality, samples)
    q, c = float(chosen.quality.mean()), float(chosen.cost.mean()) * PER_1K
    bq, bc = float(best.quality.mean()), float(best.cost.mean()) * PER_1K
    return {
        "cascades": sorted({r.levels[r.selected].name for r in results}),
        "quality": q,
        "cost_per_1k": c,
        "best_single": sorted({r.best for r in results}),
        "best_single_quality": bq,
        "best_single_cost_per_1k": bc,
        "quality_minus_best_interval": gap,
        "cost_share_of_best": c / bc if bc else None,
        # Matching: the best single model's quality inside the interval, or below it.
        "matches_best": not gap["worse"],
        "engine_agreement": [r.engine_agreement for r in results],
        "hops": _hops(results, data),
        "ibc": _ibc(results, data, singles),
    }


def _rows(run: RoutedRun, rows: np.typing.NDArray[np.int64]) -> RoutedRun:
    index = {int(r): i for i, r in enumerate(run.rows)}
    pick = np.array([index[int(r)] for r in rows], dtype=np.int64)
    return RoutedRun(
        run.policy, run.rows[pick], run.model[pick], run.cost[pick], run.quality[pick],
        run.attempts[pick], 0,
    )  # fmt: skip


def _hops(results: Sequence[CascadeResult], data: OutcomeSet) -> dict[str, Any]:
    """Share answered at each step; the verifier's escalation rate against the wrong
    first-tier answers it caught (the first tier's best supported answer is the one
    it would have served; it is wrong when that model's outcome is)."""
    steps = np.concatenate([r.steps[r.selected] for r in results])
    wrong = np.concatenate(
        [data.quality[r.runs[r.selected].rows, r.first_choice[r.selected]] < 0.5 for r in results]
    )
    escalated = steps > 1
    counts = np.bincount(steps, minlength=4)[1:]
    return {
        "share_by_step": (counts / len(steps)).tolist(),
        "escalation_rate": float(escalated.mean()),
        "wrong_first_tier_share": float(wrong.mean()),
        "wrong_caught": float(escalated[wrong].mean()) if wrong.any() else None,
        "right_escalated": float(escalated[~wrong].mean()) if (~wrong).any() else None,
    }


def _ibc(
    results: Sequence[CascadeResult], data: OutcomeSet, singles: dict[str, RoutedRun]
) -> dict[str, Any]:
    """AutoMix's IBC of the operating point, per split averaged: (q − q_slm)/(c − c_slm)
    against the base line (q_llm − q_slm)/(c_llm − c_slm); ΔIBC in percent."""
    values = []
    for r in results:
        cand, run = r.levels[r.selected], r.runs[r.selected]
        if cand.last is None:
            continue
        slm = min(cand.first, key=lambda m: float(singles[m].cost.mean()))
        small = _rows(singles[slm], run.rows)
        large = _rows(singles[cand.last], run.rows)
        qs, cs = float(small.quality.mean()), float(small.cost.mean())
        ql, cl = float(large.quality.mean()), float(large.cost.mean())
        q, c = float(run.quality.mean()), float(run.cost.mean())
        if c == cs or cl == cs or ql == qs:
            continue
        ibc, base = (q - qs) / (c - cs), (ql - qs) / (cl - cs)
        values.append((ibc, base, 100.0 * (ibc - base) / base))
    if not values:
        return {"ibc": None, "ibc_base": None, "delta_ibc_pct": None}
    ibc, base, delta = (float(np.mean(v)) for v in zip(*values, strict=True))
    return {"ibc": ibc, "ibc_base": base, "delta_ibc_pct": delta}


def _mean_quality(curve: Curve, weights: Floats) -> float:
    return float(curve.quality[0] @ weights / weights.sum())
