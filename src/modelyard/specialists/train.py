"""Training a specialist: sentence embeddings + a calibrated linear (or small MLP) head.

    texts --encoder--> unit vectors --head--> logits --/T--> calibrated probabilities

A seeded, stratified slice of the training data (10% by default) is held out: the
head is fitted on the rest, and the slice fits the temperature T, measures held-out
accuracy and calibration (that accuracy becomes the card's quality prior for the
task), and picks the default escalation threshold. The head is scikit-learn's
multinomial logistic regression (or `MLPClassifier`); only its weights are kept, so
serving needs NumPy alone. Same data, seed and encoder give the same artifact.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.embeddings import Encoder, encode_batched
from modelyard.embeddings.base import Vectors
from modelyard.specialists.artifact import Head, SpecialistModel, softmax
from modelyard.specialists.calibration import (
    Ints,
    choose_threshold,
    coverage_curve,
    ece,
    fit_temperature,
)
from modelyard.specialists.data import LabelledData
from modelyard.specialists.manifest import (
    FORMAT_VERSION,
    EncoderInfo,
    HeadKind,
    Manifest,
    OosInfo,
    TrainingInfo,
)
from modelyard.specialists.oos import Geometry, OosScorer, features
from modelyard.specialists.oos_fit import OosSample, fit_oos, simulate

Weights = dict[str, npt.NDArray[Any]]
Advance = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """Knobs of one training run; all of them are recorded in the manifest."""

    seed: int = 0
    head: HeadKind = "linear"
    # Inverse L2 strength of the logistic head. Unit-length embeddings give small
    # logits, so a weak penalty (C=10) fits best: 0.93 vs 0.91 at C=1 on Banking77.
    c: float = 10.0
    max_iter: int = 2000
    hidden: int = 512
    balanced: bool = False
    # Train on texts longer than the encoder reads (it keeps their first max_tokens).
    truncate: bool = False
    calibration_fraction: float = 0.1
    # The default threshold is the lowest confidence at which held-out answers are
    # at least this accurate; below it the request escalates.
    target_accuracy: float = 0.95
    # The out-of-scope threshold escalates this share of out-of-scope inputs (real
    # ones if given, else simulated by holding out whole classes in `oos_folds` folds).
    oos_target_recall: float = 0.85
    oos_folds: int = 4
    oos_check: bool = True


@dataclass(frozen=True, slots=True)
class Trained:
    """A trained specialist, ready to save: its manifest, weights and loaded model."""

    manifest: Manifest
    weights: Weights
    model: SpecialistModel


@dataclass(frozen=True, slots=True)
class Stages:
    """Progress hooks: `encoding(total)` returns the per-batch advance; `stage(text)`
    announces the next step. The CLI wires these to a rich progress bar."""

    encoding: Callable[[int], Advance | None] = lambda total: None
    stage: Callable[[str], None] = lambda text: None


def data_hash(data: LabelledData) -> str:
    """SHA-256 of the (text, label) rows in order: the same data gives the same hash,
    whether it came from a CSV, a JSONL file or the ledger."""
    digest = hashlib.sha256()
    for text, label in zip(data.texts, data.labels, strict=True):
        digest.update(text.encode())
        digest.update(b"\x1f")
        digest.update(label.encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def stratified_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[Ints, Ints]:
    """(fit, held-out) indices: about `fraction` of each class held out, seeded.
    A class with a single example stays on the fitting side."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    fit: list[int] = []
    held: list[int] = []
    for label in sorted(set(labels)):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        n_held = min(len(members) - 1, max(1, round(len(members) * fraction)))
        held.extend(members[:n_held].tolist())
        fit.extend(members[n_held:].tolist())
    return np.array(sorted(fit), dtype=np.int64), np.array(sorted(held), dtype=np.int64)


def fit_head(
    x: Vectors, y: Sequence[str], options: TrainOptions
) -> tuple[tuple[str, ...], HeadKind, Weights]:
    """Fit the head with scikit-learn; return the label order and plain weights."""
    if options.head == "mlp":
        from sklearn.neural_network import MLPClassifier

        mlp = MLPClassifier(
            hidden_layer_sizes=(options.hidden,),
            alpha=1e-3,
            max_iter=200,
            early_stopping=True,
            random_state=options.seed,
        ).fit(x, y)
        w2, b2 = _two_class_logits(mlp.coefs_[1].T, mlp.intercepts_[1])
        weights = {"W1": mlp.coefs_[0].T, "b1": mlp.intercepts_[0], "W2": w2, "b2": b2}
        return tuple(str(c) for c in mlp.classes_), "mlp", weights
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(
        C=options.c,
        max_iter=options.max_iter,
        class_weight="balanced" if options.balanced else None,
        random_state=options.seed,
    ).fit(x, y)
    w, b = _two_class_logits(lr.coef_, lr.intercept_)
    return tuple(str(c) for c in lr.classes_), "linear", {"W": w, "b": b}


def _two_class_logits(
    w: npt.NDArray[Any], b: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """scikit-learn gives one logit for two classes; softmax over [0, z] is sigmoid(z),
    so a zero row in front makes every head an ordinary k-way softmax."""
    if w.shape[0] == 1:
        return np.vstack([np.zeros_like(w), w]), np.concatenate([np.zeros_like(b), b])
    return w, b


def train_specialist(
    data: LabelledData,
    encoder: Encoder,
    *,
    encoder_name: str,
    name: str,
    task: str,
    version: int = 1,
    options: TrainOptions | None = None,
    stages: Stages | None = None,
    oos: LabelledData | None = None,
) -> Trained:
    """Encode, split, fit the head, calibrate on the held-out slice, pick the threshold;
    then fit the out-of-scope score on `oos` texts (or simulated ones) and its threshold."""
    options = options or TrainOptions()
    stages = stages or Stages()
    started = time.perf_counter()
    x = encode_batched(encoder, data.texts, advance=stages.encoding(len(data)))
    fit_idx, held_idx = stratified_split(data.labels, options.calibration_fraction, options.seed)
    stages.stage(f"fitting the {options.head} head on {len(fit_idx):,} rows")
    labels, kind, weights = fit_head(x[fit_idx], [data.labels[i] for i in fit_idx], options)
    head = Head(kind, weights)
    stages.stage(f"calibrating on {len(held_idx):,} held-out rows")
    index = {label: i for i, label in enumerate(labels)}
    # A held-out label the head never saw (a class with one example) cannot be scored.
    held_idx = np.array([i for i in held_idx if data.labels[i] in index], dtype=np.int64)
    held_logits = head.logits(x[held_idx])
    held_y = np.array([index[data.labels[i]] for i in held_idx], dtype=np.int64)
    temperature = fit_temperature(held_logits, held_y)
    metrics, threshold = _heldout_metrics(head, x[held_idx], held_y, temperature, options)
    fit_y = np.array([index[data.labels[i]] for i in fit_idx], dtype=np.int64)
    geometry = Geometry.fit(x[fit_idx], fit_y, len(labels))
    oos_info = _fit_oos(
        x, data, fit_idx, held_idx, head, temperature, threshold, geometry, options,
        oos, encoder, stages,
    )  # fmt: skip
    if oos_info is not None:
        weights = {**weights, **geometry.arrays()}
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name=name,
        version=version,
        task=task,
        labels=labels,
        encoder=EncoderInfo(
            name=encoder_name, id=encoder.id, dim=encoder.dim, max_tokens=encoder.max_tokens
        ),
        head=kind,
        temperature=temperature,
        threshold=threshold,
        metrics={**metrics, "train_rows": float(len(fit_idx))},
        training=TrainingInfo(
            data_sha256=data_hash(data),
            source=data.source,
            rows=len(data),
            seed=options.seed,
            seconds=round(time.perf_counter() - started, 3),
            params=asdict(options),
        ),
        created_at=datetime.now(UTC),
        threshold_rule=(
            f"lowest calibrated confidence at which the {len(held_idx):,} held-out rows "
            f"answered are at least {options.target_accuracy:.0%} right (0: all of them are)"
        ),
        oos=oos_info,
    )
    scorer = OosScorer(oos_info, geometry) if oos_info is not None else None
    return Trained(manifest, weights, SpecialistModel(manifest, head, encoder, scorer))


def _fit_oos(
    x: Vectors,
    data: LabelledData,
    fit_idx: Ints,
    held_idx: Ints,
    head: Head,
    temperature: float,
    threshold: float,
    geometry: Geometry,
    options: TrainOptions,
    oos: LabelledData | None,
    encoder: Encoder,
    stages: Stages,
) -> OosInfo | None:
    """The out-of-scope section of the manifest, or None when it cannot be measured
    (fewer than three classes and no out-of-scope examples) or is switched off."""
    if not options.oos_check:
        return None
    held_conf = softmax(head.logits(x[held_idx]), temperature).max(axis=1)
    held_feats = features(geometry, x[held_idx], held_conf)
    sample: OosSample | None
    if oos is not None and len(oos):
        stages.stage(f"scoring {len(oos):,} out-of-scope examples")
        ox = encode_batched(encoder, oos.texts, advance=stages.encoding(len(oos)))
        oconf = softmax(head.logits(ox), temperature).max(axis=1)
        sample = OosSample(
            held_feats,
            features(geometry, ox, oconf),
            "oos-examples",
            f"{len(oos):,} out-of-scope examples from {oos.source} vs "
            f"{len(held_idx):,} in-scope held-out rows",
        )
    else:
        stages.stage(f"simulating out-of-scope inputs: {options.oos_folds} held-out-class folds")

        def fit(xs: Vectors, ys: Sequence[str]) -> tuple[tuple[str, ...], Head]:
            labels, kind, w = fit_head(xs, ys, options)
            return labels, Head(kind, w)

        fit_labels = [data.labels[i] for i in fit_idx]
        sample = simulate(x[fit_idx], fit_labels, fit, folds=options.oos_folds, seed=options.seed)
        if sample is None:
            stages.stage("no out-of-scope check: simulating one needs at least 3 classes")
            return None
    return fit_oos(
        sample,
        held_feats,
        held_conf >= threshold,
        target_recall=options.oos_target_recall,
        seed=options.seed,
    )


def _heldout_metrics(
    head: Head, x: Vectors, y: Ints, temperature: float, options: TrainOptions
) -> tuple[dict[str, float], float]:
    """Held-out accuracy and calibration before/after T, and the default threshold."""
    if len(y) == 0:
        return {"heldout_rows": 0.0}, 0.0
    logits = head.logits(x)
    raw = softmax(logits)
    cal = softmax(logits, temperature)
    correct = cal.argmax(axis=1) == y
    confidence = cal.max(axis=1)
    threshold = choose_threshold(coverage_curve(confidence, correct), options.target_accuracy)
    metrics = {
        "heldout_rows": float(len(y)),
        "heldout_accuracy": float(correct.mean()),
        "heldout_ece": ece(confidence, correct),
        "heldout_ece_uncalibrated": ece(raw.max(axis=1), raw.argmax(axis=1) == y),
        "heldout_coverage_at_threshold": float((confidence >= threshold).mean()),
    }
    return metrics, threshold
