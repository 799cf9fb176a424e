"""Evaluating a specialist on labelled data: the numbers that decide whether to serve it.

Accuracy, macro-F1 and a per-class report (scikit-learn's metrics), expected
calibration error of the calibrated confidences, and the coverage/accuracy curve
that the escalation threshold moves along: "answer only when confidence >= t"
answers a `coverage` share of requests with `accuracy`, and escalates the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.embeddings import encode_batched
from modelyard.specialists.artifact import SpecialistModel
from modelyard.specialists.calibration import (
    CurvePoint,
    accuracy_at_coverage,
    coverage_curve,
    ece,
)
from modelyard.specialists.data import LabelledData, check_known_labels

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

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
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
) -> EvalReport:
    """Score `data` (labels must be ones the specialist knows) and summarise."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    check_known_labels(data, model.labels)
    vectors = encode_batched(model.encoder, data.texts, advance=advance)
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
