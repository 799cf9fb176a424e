"""How good a quality predictor is, on prompts it was not trained on.

These are prediction metrics (the replay harness measures routing): error, how
well the predicted order of models matches the real one per prompt, and the real
quality of the model the predictor would pick — overall, and among the cheaper half.
Each is reported next to the per-model-mean baseline (the same ranking for every
prompt), because that is what a learned router must beat.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata  # type: ignore[import-untyped]

from modelyard.learned.predictors import Floats
from modelyard.learned.search import masked_mse

# Pairs of models whose real quality differs by less than this are a coin toss for
# the judge, so they do not count toward pairwise accuracy.
PAIR_MARGIN = 0.1


def spearman_per_prompt(pred: Floats, truth: Floats) -> float:
    """Mean over prompts of the rank correlation between predicted and real quality
    across the models observed on that prompt (prompts where all tie are skipped)."""
    values = []
    for p, t in zip(pred, truth, strict=True):
        seen = ~np.isnan(t)
        if seen.sum() < 2 or np.ptp(t[seen]) == 0 or np.ptp(p[seen]) == 0:
            continue
        rp, rt = rankdata(p[seen]), rankdata(t[seen])
        values.append(float(np.corrcoef(rp, rt)[0, 1]))
    return float(np.mean(values)) if values else math.nan


def pairwise_accuracy(pred: Floats, truth: Floats, margin: float = PAIR_MARGIN) -> float:
    """Share of (prompt, model pair) with a real gap > margin that the prediction orders right."""
    dt = truth[:, :, None] - truth[:, None, :]
    dp = pred[:, :, None] - pred[:, None, :]
    counted = np.nan_to_num(dt, nan=0.0) > margin
    return float((dp[counted] > 0).mean()) if counted.any() else math.nan


def pick_quality(pred: Floats, truth: Floats, cost: Floats, cheaper_half: bool = False) -> float:
    """Mean real quality of each prompt's predicted-best model: among all models, or
    (a budget that holds on any price scale) among those whose cost on that prompt
    is at most the median model's."""
    allowed = ~np.isnan(truth)
    if cheaper_half:
        cap = np.nanmedian(cost, axis=1, keepdims=True)
        allowed &= np.nan_to_num(cost, nan=np.inf) <= cap
    scores = np.where(allowed, pred, -np.inf)
    has = allowed.any(axis=1)
    choice = scores.argmax(axis=1)
    picked = np.where(has, truth[np.arange(len(truth)), choice], np.nan)
    return float(np.nanmean(picked))


def prediction_report(
    pred: Floats, truth: Floats, cost: Floats, baseline: Floats
) -> dict[str, Any]:
    """The metrics for `pred` and for the constant `baseline` (per-model means)
    on the same prompts, plus the oracle's pick quality."""
    const = np.broadcast_to(baseline, truth.shape)
    report: dict[str, Any] = {"prompts": len(truth)}
    for name, p in (("model", pred), ("baseline", const)):
        report[name] = {
            "mse": masked_mse(p, truth),
            "spearman": spearman_per_prompt(p, truth),
            "pairwise_accuracy": pairwise_accuracy(p, truth),
            "pick_quality": pick_quality(p, truth, cost),
            "pick_quality_cheaper_half": pick_quality(p, truth, cost, cheaper_half=True),
        }
    oracle = np.nan_to_num(truth, nan=-1.0)
    report["oracle"] = {
        "pick_quality": pick_quality(oracle, truth, cost),
        "pick_quality_cheaper_half": pick_quality(oracle, truth, cost, cheaper_half=True),
    }
    return report
