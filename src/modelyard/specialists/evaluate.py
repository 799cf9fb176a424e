"""Evaluating a specialist on labelled data: the numbers that decide whether to serve it.

Accuracy, macro-F1 and a per-class report (scikit-learn's metrics), expected
calibration error of the calibrated confidences, and the coverage/accuracy curve
that the escalation threshold moves along: "answer only when confidence >= t"
answers a `coverage` share of requests with `accuracy`, and escalates the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.embeddings import encode_batched
from modelyard.embeddings.base import Vectors
from modelyard.specialists.artifact import SpecialistModel
from modelyard.specialists.calibration import (
    CurvePoint,
    Ints,
    accuracy_at_coverage,
    coverage_curve,
    ece,
)
from modelyard.specialists.data import DataError, LabelledData, check_known_labels
from modelyard.specialists.oos import SCORES, combine, features
from modelyard.specialists.oos_fit import auroc

REPORTED_COVERAGES = (1.0, 0.95, 0.9, 0.8)
Advance = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ClassReport:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class OosReport:
    """How the specialist treats out-of-scope rows (those labelled `label`).

    `oos_escalated`: share of them escalated for any reason (out of scope, or low
    confidence); `oos_recall`: by the out-of-scope threshold alone;
    `inscope_escalated`: share of in-scope rows escalated; `answered_accuracy`: of
    every row answered, the share right (an answered out-of-scope row is wrong);
    `auroc`: in-scope vs out-of-scope, per score (higher: more out of scope)."""

    label: str
    rows: int
    oos_threshold: float | None
    oos_escalated: float
    oos_recall: float | None
    inscope_escalated: float
    answered_accuracy: float
    auroc: dict[str, float]


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Everything `modelyard specialist eval` prints, plots and writes as JSON."""

    name: str
    source: str
    rows: int
    accuracy: float
    macro_f1: float
    ece: float
    ece_uncalibrated: float
    threshold: float
    coverage_at_threshold: float
    accuracy_at_threshold: float
    at_coverage: dict[str, CurvePoint]
    per_class: tuple[ClassReport, ...]
    curve: tuple[CurvePoint, ...] = field(repr=False)
    oos: OosReport | None = None
    correct: tuple[bool, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["correct"]
        # Thin the curve for the JSON file: ~200 points draw it faithfully.
        step = max(1, len(self.curve) // 200)
        out["curve"] = [asdict(p) for p in self.curve[::step]]
        return out


def evaluate(
    model: SpecialistModel,
    data: LabelledData,
    *,
    threshold: float | None = None,
    advance: Advance | None = None,
    oos_label: str | None = None,
) -> EvalReport:
    """Score `data` and summarise. Labels must be ones the specialist knows, except
    rows labelled `oos_label`: those are out of scope, and the report says how many
    of them escalate."""
    inside, outside = split_oos_rows(data, oos_label)
    check_known_labels(data.subset(inside.tolist()), model.labels, oos_hint=oos_label is None)
    all_vectors = encode_batched(model.encoder, data.texts, advance=advance)
    in_scope = data.subset(inside.tolist())
    report = _in_scope_report(model, in_scope, all_vectors[inside], threshold)
    if oos_label is None:
        return report
    oos = oos_report(model, all_vectors[inside], all_vectors[outside], report, oos_label)
    return replace(report, oos=oos)


def split_oos_rows(data: LabelledData, oos_label: str | None) -> tuple[Ints, Ints]:
    """Indices of in-scope rows and of rows labelled `oos_label`."""
    is_oos = np.array([label == oos_label for label in data.labels], dtype=bool)
    if oos_label is not None and not is_oos.any():
        raise DataError(f"{data.source}: no row is labelled '{oos_label}' (--oos-label)")
    if is_oos.all():
        raise DataError(f"{data.source}: every row is labelled '{oos_label}'; none is in scope")
    return np.flatnonzero(~is_oos), np.flatnonzero(is_oos)


def oos_report(
    model: SpecialistModel, v_in: Vectors, v_out: Vectors, report: EvalReport, label: str
) -> OosReport:
    """Escalation of out-of-scope rows against in-scope ones, and AUROC per score."""
    probs_in, probs_out = model.probabilities(v_in), model.probabilities(v_out)
    conf_in, conf_out = probs_in.max(axis=1), probs_out.max(axis=1)
    auroc_scores = {"confidence": auroc(1 - conf_in, 1 - conf_out)}
    esc_in, esc_out = conf_in < report.threshold, conf_out < report.threshold
    recall = oos_threshold = None
    if model.oos is not None:
        f_in = features(model.oos.geometry, v_in, conf_in, model.oos.info.k)
        f_out = features(model.oos.geometry, v_out, conf_out, model.oos.info.k)
        for i, name in enumerate(SCORES[1:], start=1):
            auroc_scores[name] = auroc(f_in[:, i], f_out[:, i])
        s_in, s_out = combine(model.oos.info, f_in), combine(model.oos.info, f_out)
        auroc_scores["combined"] = auroc(s_in, s_out)
        oos_threshold = model.oos.info.threshold
        recall = float((s_out >= oos_threshold).mean())
        esc_in, esc_out = esc_in | (s_in >= oos_threshold), esc_out | (s_out >= oos_threshold)
    right_in = np.asarray(report.correct)
    answered = (~esc_in).sum() + (~esc_out).sum()
    return OosReport(
        label=label,
        rows=len(v_out),
        oos_threshold=oos_threshold,
        oos_escalated=float(esc_out.mean()),
        oos_recall=recall,
        inscope_escalated=float(esc_in.mean()),
        answered_accuracy=float((right_in & ~esc_in).sum() / answered) if answered else 0.0,
        auroc=auroc_scores,
    )


def _in_scope_report(
    model: SpecialistModel, data: LabelledData, vectors: Vectors, threshold: float | None
) -> EvalReport:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    index = {label: i for i, label in enumerate(model.labels)}
    y = np.array([index[label] for label in data.labels], dtype=np.int64)
    probs = model.probabilities(vectors)
    raw = model.probabilities(vectors, calibrated=False)
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    correct = predicted == y
    curve = coverage_curve(confidence, correct)
    t = model.manifest.threshold if threshold is None else threshold
    answered = confidence >= t
    present = sorted(set(y.tolist()) | set(predicted.tolist()))
    p, r, f, s = precision_recall_fscore_support(y, predicted, labels=present, zero_division=0)
    at = {f"{c:.2f}": pt for c in REPORTED_COVERAGES if (pt := accuracy_at_coverage(curve, c))}
    return EvalReport(
        name=model.manifest.name,
        source=data.source,
        rows=len(data),
        accuracy=float(correct.mean()),
        macro_f1=float(f1_score(y, predicted, labels=present, average="macro", zero_division=0)),
        ece=ece(confidence, correct),
        ece_uncalibrated=ece(raw.max(axis=1), raw.argmax(axis=1) == y),
        threshold=t,
        coverage_at_threshold=float(answered.mean()),
        accuracy_at_threshold=float(correct[answered].mean()) if answered.any() else 0.0,
        at_coverage=at,
        per_class=tuple(
            ClassReport(model.labels[c], float(pi), float(ri), float(fi), int(si))
            for c, pi, ri, fi, si in zip(present, p, r, f, s, strict=True)
        ),
        curve=tuple(curve),
        correct=tuple(bool(c) for c in correct),
    )


def plot(report: EvalReport, out: Path) -> Path:
    """Two panels: accuracy against coverage with the threshold marked, and coverage
    and accuracy against the threshold (ECE in its title). PNG via the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    cov = [p.coverage for p in report.curve]
    left.plot(cov, [p.accuracy for p in report.curve], color="tab:blue")
    left.axvline(report.coverage_at_threshold, color="tab:red", linestyle="--", linewidth=1)
    left.annotate(
        f"threshold {report.threshold:.2f}\n{report.coverage_at_threshold:.0%} answered, "
        f"{report.accuracy_at_threshold:.1%} right",
        (report.coverage_at_threshold, report.accuracy_at_threshold),
        textcoords="offset points",
        xytext=(-150, -40),
        fontsize=8,
    )
    left.set_xlabel("coverage (share answered by the specialist)")
    left.set_ylabel("accuracy of answered requests")
    left.set_title(f"{report.name}: accuracy {report.accuracy:.1%}, macro-F1 {report.macro_f1:.3f}")
    left.grid(alpha=0.3)
    right.plot([p.threshold for p in report.curve], cov, label="coverage", color="tab:green")
    right.plot(
        [p.threshold for p in report.curve],
        [p.accuracy for p in report.curve],
        label="accuracy",
        color="tab:blue",
    )
    right.set_xlabel("confidence threshold")
    right.set_title(f"ECE {report.ece:.3f} (uncalibrated {report.ece_uncalibrated:.3f})")
    right.legend(loc="lower left")
    right.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def worst_classes(report: EvalReport, n: int = 10) -> Sequence[ClassReport]:
    """The classes with the lowest F1, for the printed summary."""
    return sorted(report.per_class, key=lambda c: (c.f1, c.label))[:n]
