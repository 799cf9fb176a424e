"""Training, the versioned artifact, and loading it with NumPy alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

import numpy as np

from modelyard.embeddings import HashingEncoder, load_encoder
from modelyard.specialists.artifact import load_specialist, next_version, save_specialist
from modelyard.specialists.data import load_labelled
from modelyard.specialists.manifest import MANIFEST, ArtifactError, read_manifest, resolve
from modelyard.specialists.train import Trained, TrainOptions, stratified_split, train_specialist
from tests.specialists.conftest import ENCODER
from tests.specialists.helpers import LABELS, make_rows, write_csv

TEXTS = [t for t, _ in make_rows(10, seed=99)]


def train(tmp_path: Path, **options: Any) -> Trained:
    data = load_labelled(write_csv(tmp_path / "train.csv", make_rows(30, seed=2)))
    return train_specialist(
        data,
        load_encoder(ENCODER),
        encoder_name=ENCODER,
        name="t",
        task="t",
        options=TrainOptions(**options),
    )


def test_the_manifest_describes_the_weights(intents_dir: Path) -> None:
    m = read_manifest(intents_dir)
    assert m.format_version == 2
    assert m.labels == LABELS
    assert m.encoder.name == ENCODER
    assert m.encoder.id == "hashing-bow-256"
    assert m.temperature > 0
    assert 0 <= m.threshold <= 1
    assert 0.5 < m.metrics["heldout_accuracy"] <= 1
    assert len(m.training.data_sha256) == 64
    assert m.training.params["seed"] == 0


def test_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    trained = train(tmp_path)
    folder = save_specialist(tmp_path / "t", trained.manifest, trained.weights)
    loaded = load_specialist(folder)
    before = trained.model.classify(TEXTS)
    after = loaded.classify(TEXTS)
    assert before == after
    vectors = loaded.encoder.encode(TEXTS)
    np.testing.assert_array_equal(
        trained.model.probabilities(vectors), loaded.probabilities(vectors)
    )


def test_same_data_and_seed_train_the_same_head(tmp_path: Path) -> None:
    a, b = train(tmp_path), train(tmp_path)
    for key in a.weights:
        np.testing.assert_array_equal(a.weights[key], b.weights[key])
    assert a.manifest.training.data_sha256 == b.manifest.training.data_sha256


def test_mlp_head_round_trips(tmp_path: Path) -> None:
    trained = train(tmp_path, head="mlp", hidden=16)
    folder = save_specialist(tmp_path / "m", trained.manifest, trained.weights)
    assert read_manifest(folder).head == "mlp"
    assert load_specialist(folder).classify(TEXTS) == trained.model.classify(TEXTS)


def test_two_classes_become_a_two_way_softmax(tmp_path: Path) -> None:
    rows = [r for r in make_rows(20, seed=3) if r[1] != "login"]
    data = load_labelled(write_csv(tmp_path / "two.csv", rows))
    trained = train_specialist(
        data, load_encoder(ENCODER), encoder_name=ENCODER, name="b", task="b"
    )
    assert trained.weights["W"].shape == (2, 256)
    preds = trained.model.classify([t for t, _ in rows])
    assert sum(p.label == lab for p, (_, lab) in zip(preds, rows, strict=True)) / len(rows) > 0.9


def test_loading_in_a_fresh_process_does_not_import_sklearn(intents_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from modelyard.specialists.artifact import load_specialist
        model = load_specialist({str(intents_dir)!r})
        print(model.classify(["refund my invoice please"])[0].label)
        heavy = sorted(m for m in ("sklearn", "scipy", "matplotlib", "torch") if m in sys.modules)
        print(",".join(heavy) or "none")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    label, heavy = out.stdout.split()
    assert label == "billing"
    assert heavy == "none"


def test_versions_are_new_folders_and_the_newest_is_served(tmp_path: Path) -> None:
    trained = train(tmp_path)
    name_dir = tmp_path / "v"
    first = save_specialist(name_dir, trained.manifest, trained.weights)
    assert next_version(name_dir) == 2
    second_manifest = trained.manifest.model_copy(update={"version": 2})
    second = save_specialist(name_dir, second_manifest, trained.weights)
    assert (first.name, second.name) == ("v0001", "v0002")
    assert resolve(name_dir) == second
    with pytest.raises(ArtifactError, match="already exists"):
        save_specialist(name_dir, second_manifest, trained.weights)
    assert not [p for p in name_dir.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_unknown_format_and_missing_artifact_are_clear(tmp_path: Path, intents_dir: Path) -> None:
    with pytest.raises(ArtifactError, match="no trained specialist here"):
        read_manifest(tmp_path / "nothing")
    copy = tmp_path / "future" / "v0001"
    copy.mkdir(parents=True)
    data = json.loads((resolve(intents_dir) / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(
        ArtifactError, match="format_version 99; this modelyard reads versions 1, 2"
    ):
        read_manifest(copy)
    (copy / MANIFEST).write_text(json.dumps({**data, "temperature": -1}))
    with pytest.raises(ArtifactError, match="temperature"):
        read_manifest(copy)


def test_a_different_encoder_is_refused(intents_dir: Path) -> None:
    with pytest.raises(ArtifactError, match="trained on encoder hashing-bow-256"):
        load_specialist(intents_dir, encoder=HashingEncoder(dim=128))


def test_stratified_split_holds_out_each_class_and_keeps_singletons() -> None:
    labels = ["a"] * 20 + ["b"] * 10 + ["c"]
    fit, held = stratified_split(labels, 0.1, seed=0)
    assert sorted([*fit, *held]) == list(range(len(labels)))
    held_labels = sorted(labels[i] for i in held)
    assert held_labels == ["a", "a", "b"]
    assert (fit == stratified_split(labels, 0.1, seed=0)[0]).all()
