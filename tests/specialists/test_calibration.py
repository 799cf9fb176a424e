"""Temperature scaling, ECE, the coverage curve and the default threshold."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn")

import numpy as np

from modelyard.embeddings import load_encoder
from modelyard.specialists.artifact import softmax
from modelyard.specialists.calibration import (
    CurvePoint,
    accuracy_at_coverage,
    choose_threshold,
    coverage_curve,
    ece,
    fit_temperature,
)
from modelyard.specialists.data import load_labelled
from modelyard.specialists.evaluate import evaluate
from modelyard.specialists.train import train_specialist
from tests.specialists.conftest import ENCODER
from tests.specialists.helpers import make_rows, write_csv


def test_fit_temperature_recovers_the_temperature_that_made_the_labels() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(4000, 5))
    true_t = 2.5
    probs = softmax(logits, true_t)
    y = np.array([rng.choice(5, p=p) for p in probs], dtype=np.int64)
    assert fit_temperature(logits, y) == pytest.approx(true_t, rel=0.1)


def test_calibration_lowers_ece_on_unseen_data(tmp_path: Path) -> None:
    # Label noise makes the weakly regularised head overconfident.
    train = load_labelled(write_csv(tmp_path / "tr.csv", make_rows(120, seed=5, noise=0.3)))
    test = load_labelled(write_csv(tmp_path / "te.csv", make_rows(120, seed=6, noise=0.3)))
    trained = train_specialist(
        train, load_encoder(ENCODER), encoder_name=ENCODER, name="n", task="n"
    )
    report = evaluate(trained.model, test)
    assert trained.manifest.temperature > 1  # it had to soften overconfident logits
    assert report.ece < report.ece_uncalibrated
    assert report.ece < 0.1


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not() -> None:
    conf = np.full(10, 0.7)
    right = np.array([True] * 7 + [False] * 3)
    assert ece(conf, right) == pytest.approx(0.0)
    assert ece(np.full(10, 0.99), right) == pytest.approx(0.29)


def test_coverage_curve_and_threshold() -> None:
    conf = np.array([0.95, 0.9, 0.9, 0.6, 0.4])
    right = np.array([True, True, False, True, False])
    curve = coverage_curve(conf, right)
    assert curve[0] == CurvePoint(0.4, 1.0, 0.6)
    assert [p.threshold for p in curve] == [0.4, 0.6, 0.9, 0.95]
    assert curve[2] == CurvePoint(0.9, 0.6, pytest.approx(2 / 3))
    assert accuracy_at_coverage(curve, 0.8) == CurvePoint(0.6, 0.8, 0.75)
    assert choose_threshold(curve, 0.7) == 0.6
    assert choose_threshold(curve, 0.5) == 0.0  # everything answered is already good enough
    assert choose_threshold(curve, 1.0) == 0.95
