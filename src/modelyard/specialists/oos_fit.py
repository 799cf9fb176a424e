"""Fitting the out-of-scope combiner and choosing its threshold (training side).

A threshold only means something if it was chosen on out-of-scope inputs. Two
sources, in order of preference:

- **real out-of-scope examples** (`--oos-label oos` rows, or `--oos-data FILE`):
  scored by the final model against the in-scope held-out slice;
- **simulated ones** ("held-out classes"): the training classes are split into
  folds; for each fold a head is fitted on the other classes only, and that fold's
  classes play the unseen intents. This is the usual held-out-intents protocol for
  data without an out-of-scope class.

The threshold is the score that escalates `target_recall` of those out-of-scope
inputs, so it is never a degenerate 0; the manifest records which source and the
in-scope answer rate expected at it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from modelyard.embeddings.base import Vectors
from modelyard.specialists.artifact import Floats, Head
from modelyard.specialists.calibration import Ints, fit_temperature
from modelyard.specialists.manifest import OosInfo, OosMethod
from modelyard.specialists.oos import DEFAULT_K, SCORES, Geometry, combine, features

# Enough simulated out-of-scope rows per fold to place a threshold; more only costs time.
MAX_OOS_ROWS_PER_FOLD = 1500
# Thresholds are kept strictly inside (0, 1): the manifest refuses a degenerate one.
EDGE = 1e-6
FitHead = Callable[[Vectors, Sequence[str]], tuple[tuple[str, ...], Head]]


@dataclass(frozen=True, slots=True)
class OosSample:
    """Raw score features of in-scope and out-of-scope rows, and where they came from."""

    inside: Floats
    outside: Floats
    method: OosMethod
    detail: str


def auroc(inside: Floats, outside: Floats) -> float:
    """Probability that an out-of-scope row scores above an in-scope one (ties: half)."""
    if len(inside) == 0 or len(outside) == 0:
        return float("nan")
    scores = np.concatenate([inside, outside])
    order = scores.argsort(kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average the ranks of tied scores so ties count one half.
    uniq, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    if len(uniq) < len(scores):
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / counts)[inverse]
    n_in, n_out = len(inside), len(outside)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def simulate(
    x: Vectors,
    labels: Sequence[str],
    fit_head: FitHead,
    *,
    folds: int,
    seed: int,
    k: int = DEFAULT_K,
) -> OosSample | None:
    """Held-out-classes cross-validation; None with fewer than 3 classes (holding one
    out must leave two to train on)."""
    classes = sorted(set(labels))
    if len(classes) < 3:
        return None
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(classes))
    folds = max(2, min(folds, len(classes)))
    y = np.asarray(labels)
    inside: list[Floats] = []
    outside: list[Floats] = []
    for fold in range(folds):
        unseen = {classes[i] for i in order[fold::folds]}
        feats_in, feats_out = _fold(x, y, unseen, fit_head, rng, k)
        inside.append(feats_in)
        outside.append(feats_out)
    detail = (
        f"{folds} folds over {len(classes)} classes, each holding out about "
        f"{len(classes) // folds} classes as unseen"
    )
    return OosSample(np.vstack(inside), np.vstack(outside), "held-out-classes", detail)


def _fold(
    x: Vectors,
    y: npt.NDArray[np.str_],
    unseen: set[str],
    fit_head: FitHead,
    rng: np.random.Generator,
    k: int,
) -> tuple[Floats, Floats]:
    """Fit on the seen classes (80%), score their other 20% and the unseen classes."""
    seen_rows = np.flatnonzero(~np.isin(y, list(unseen)))
    out_rows = np.flatnonzero(np.isin(y, list(unseen)))
    if len(out_rows) > MAX_OOS_ROWS_PER_FOLD:
        out_rows = rng.choice(out_rows, MAX_OOS_ROWS_PER_FOLD, replace=False)
    shuffled = rng.permutation(seen_rows)
    cut = max(1, len(shuffled) // 5)
    held, fit = shuffled[:cut], shuffled[cut:]
    labels, head = fit_head(x[fit], [str(v) for v in y[fit]])
    index = {label: i for i, label in enumerate(labels)}
    keep = np.array([str(v) in index for v in y[held]], dtype=bool)
    held = held[keep]
    held_y = np.array([index[str(v)] for v in y[held]], dtype=np.int64)
    temperature = fit_temperature(head.logits(x[held]), held_y)
    fit_y = np.array([index[str(v)] for v in y[fit]], dtype=np.int64)
    geometry = Geometry.fit(x[fit], fit_y, len(labels))

    def feats(rows: Ints) -> Floats:
        conf = _confidence(head, x[rows], temperature)
        return features(geometry, x[rows], conf, k)

    return feats(held), feats(out_rows)


def _confidence(head: Head, x: Vectors, temperature: float) -> Floats:
    from modelyard.specialists.artifact import softmax

    return np.asarray(softmax(head.logits(x), temperature).max(axis=1))


def fit_oos(
    sample: OosSample,
    held_in: Floats,
    held_conf_ok: npt.NDArray[np.bool_],
    *,
    target_recall: float,
    k: int = DEFAULT_K,
    seed: int = 0,
) -> OosInfo:
    """Fit the combiner on `sample`, pick the threshold escalating `target_recall` of its
    out-of-scope rows, and measure the in-scope answer rate on `held_in` (features of
    the final model's held-out slice; `held_conf_ok`: confidence at or above its
    threshold)."""
    from sklearn.linear_model import LogisticRegression

    both = np.vstack([sample.inside, sample.outside])
    mean = both.mean(axis=0)
    scale = both.std(axis=0)
    scale[scale == 0] = 1.0
    target = np.r_[np.zeros(len(sample.inside)), np.ones(len(sample.outside))]
    lr = LogisticRegression(class_weight="balanced", random_state=seed)
    lr.fit((both - mean) / scale, target)
    info = OosInfo(
        scores=SCORES,
        k=k,
        mean=tuple(map(float, mean)),
        scale=tuple(map(float, scale)),
        weights=tuple(map(float, lr.coef_[0])),
        bias=float(lr.intercept_[0]),
        threshold=0.5,
        method=sample.method,
        detail=sample.detail,
        target_recall=target_recall,
        expected_oos_recall=0.0,
        expected_inscope_answer_rate=0.0,
    )
    out_scores = combine(info, sample.outside)
    in_scores = combine(info, sample.inside)
    threshold = float(np.clip(np.quantile(out_scores, 1 - target_recall), EDGE, 1 - EDGE))
    held_scores = combine(info, held_in)
    answered = (held_scores < threshold) & held_conf_ok
    per_score = {
        name: auroc(sample.inside[:, i], sample.outside[:, i]) for i, name in enumerate(SCORES)
    }
    return info.model_copy(
        update={
            "threshold": threshold,
            "expected_oos_recall": float((out_scores >= threshold).mean()),
            "expected_inscope_answer_rate": float(answered.mean()) if len(answered) else 1.0,
            "auroc": {**per_score, "combined": auroc(in_scores, out_scores)},
        }
    )
