"""Calibration: temperature scaling, expected calibration error, and the escalation threshold.

A specialist's confidence decides whether a request escalates to a bigger model, so
"0.9" must mean "right nine times in ten". Temperature scaling (Guo et al. 2017)
divides the logits by one scalar T fitted on held-out data; it changes no argmax,
only how sharp the probabilities are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from modelyard.specialists.artifact import Floats, softmax

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

ECE_BINS = 15
# The search range for T: below 0.05 or above 20 the head is broken, not miscalibrated.
T_MIN, T_MAX = 0.05, 20.0


def nll(logits: Floats, y: Ints, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes `y` under softmax(logits / T)."""
    probs = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))


def fit_temperature(logits: Floats, y: Ints) -> float:
    """The T in [0.05, 20] minimising held-out NLL, with a weak log-normal prior at T=1.

    The prior (total NLL + (log T)^2 / 2) matters only for a small held-out slice: one
    with no mistakes has no NLL minimum at all (ever-sharper T keeps "improving" it),
    and a dozen lucky answers must not make the specialist certain of everything. With
    a thousand held-out rows it moves T by well under 1%."""
    if len(y) == 0:
        return 1.0
    from scipy.optimize import minimize_scalar  # type: ignore[import-untyped]

    n = len(y)
    result = minimize_scalar(
        lambda log_t: n * nll(logits, y, float(np.exp(log_t))) + 0.5 * log_t**2,
        bounds=(np.log(T_MIN), np.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def ece(confidence: Floats, correct: Bools, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the coverage-weighted gap between confidence and
    accuracy over equal-width confidence bins."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(float(correct[mask].mean()) - float(confidence[mask].mean()))
    return float(total)


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """Answering only when confidence >= threshold: the share answered, and how well."""

    threshold: float
    coverage: float
    accuracy: float


def coverage_curve(confidence: Floats, correct: Bools) -> list[CurvePoint]:
    """One point per distinct confidence, from full coverage down to the most confident."""
    order = np.argsort(-confidence, kind="stable")
    conf, ok = confidence[order], correct[order]
    hits = np.cumsum(ok)
    n = len(conf)
    points: list[CurvePoint] = []
    # The last index of each run of equal confidence is where a threshold can sit.
    for i in range(n):
        if i + 1 < n and conf[i + 1] == conf[i]:
            continue
        points.append(CurvePoint(float(conf[i]), (i + 1) / n, float(hits[i]) / (i + 1)))
    return points[::-1]


def accuracy_at_coverage(curve: list[CurvePoint], coverage: float) -> CurvePoint | None:
    """The point answering at least `coverage` of requests with the highest threshold."""
    eligible = [p for p in curve if p.coverage >= coverage - 1e-12]
    return max(eligible, key=lambda p: p.threshold) if eligible else None


def choose_threshold(curve: list[CurvePoint], target_accuracy: float) -> float:
    """The lowest threshold whose answered share is at least `target_accuracy` correct
    (0 if every answer already is); if none reaches it, the most accurate one."""
    if not curve:
        return 0.0
    if curve[0].accuracy >= target_accuracy:
        return 0.0
    reaching = [p for p in curve if p.accuracy >= target_accuracy]
    if reaching:
        return min(p.threshold for p in reaching)
    return max(curve, key=lambda p: (p.accuracy, -p.threshold)).threshold
