"""The shared Banking77 data loads as the benchmark expects, and a specialist trained
on a slice of it (hashing encoder: seconds, not minutes) beats chance by far."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from modelyard.embeddings import load_encoder
from modelyard.specialists.data import load_labelled
from modelyard.specialists.evaluate import evaluate
from modelyard.specialists.train import stratified_split, train_specialist
from tests.data_paths import SHARED_DATA, needs_data

BANKING = SHARED_DATA / "banking77"
pytestmark = needs_data("banking77")


def test_train_and_test_files_load_with_the_published_label_set() -> None:
    categories = json.loads((BANKING / "categories.json").read_text())
    train = load_labelled(BANKING / "train.csv", label="category")
    test = load_labelled(BANKING / "test.csv", label="category")
    assert len(train) == 10_003
    assert len(test) == 3_080
    assert set(train.labels) == set(test.labels) == set(categories)


def test_a_slice_trains_a_specialist_far_above_chance(tmp_path: Path) -> None:
    train = load_labelled(BANKING / "train.csv", label="category")
    test = load_labelled(BANKING / "test.csv", label="category")
    _, small = stratified_split(train.labels, 0.1, seed=0)
    _, probe = stratified_split(test.labels, 0.2, seed=0)
    encoder = load_encoder("hashing-512")
    trained = train_specialist(
        train.subset(small.tolist()), encoder, encoder_name="hashing-512", name="b", task="b"
    )
    report = evaluate(trained.model, test.subset(probe.tolist()))
    assert len(trained.model.labels) == 77
    assert report.accuracy > 0.5  # chance is 1/77
    assert report.ece < report.ece_uncalibrated
