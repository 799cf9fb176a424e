"""Artifacts: a round trip predicts identically; wrong encoder or format is an error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

from modelyard.embeddings import HashingEncoder  # noqa: E402
from modelyard.learned.artifact import FORMAT_VERSION, ArtifactError  # noqa: E402
from modelyard.learned.scorer import LearnedScorer, load_scorer  # noqa: E402
from modelyard.learned.train import train_scorer  # noqa: E402
from tests.learned.synth import topic_outcomes  # noqa: E402
from tests.learned.test_predictors import FIXED  # noqa: E402

ENCODER = HashingEncoder(dim=64)
PROBES = ["python function with a bug", "a sonnet about the moon", "prove this theorem", ""]


MLP_HEAD = {"head": "mlp", "hidden": 4, "alpha": 1.0, "max_iter": 50}


def trained(kind: str = "knn", **params: Any) -> LearnedScorer:
    params = params or FIXED[kind]
    return train_scorer(kind, topic_outcomes(n=45), encoder=ENCODER, folds=0, **params)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "params"), [("knn", {}), ("mlp", {}), ("mlp", MLP_HEAD), ("mf", {})]
)
def test_round_trip_predicts_identically(tmp_path: Path, kind: str, params: dict[str, Any]) -> None:
    if kind == "mf":
        pytest.importorskip("torch")
    scorer = trained(kind, **params)
    scorer.save(tmp_path / "art")
    loaded = load_scorer(tmp_path / "art", encoder=HashingEncoder(dim=64))
    assert np.array_equal(loaded.predict(PROBES), scorer.predict(PROBES))
    assert loaded.version == scorer.version
    assert loaded.version.startswith(f"{kind}-")
    assert loaded.models == ("small", "vision-mid", "frontier")


def test_manifest_records_what_trained_it(tmp_path: Path) -> None:
    scorer = trained("knn")
    scorer.save(tmp_path / "art")
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["kind"] == "knn"
    assert manifest["encoder"] == {"id": "hashing-bow-64", "name": "hashing-64", "dim": 64}
    assert manifest["models"] == ["small", "vision-mid", "frontier"]
    assert manifest["data"]["sha256"] == topic_outcomes(n=45).content_hash()
    assert manifest["params"] == FIXED["knn"]
    assert manifest["output_tokens"] == {"small": 100.0, "vision-mid": 200.0, "frontier": 400.0}
    assert manifest["created_at"]
    assert (tmp_path / "art" / "arrays.npz").is_file()


def test_a_different_version_for_different_weights() -> None:
    a = trained("knn")
    b = train_scorer("knn", topic_outcomes(n=45, seed=9), encoder=ENCODER, folds=0, **FIXED["knn"])
    assert a.version != b.version


def test_loading_with_another_encoder_is_an_error(tmp_path: Path) -> None:
    trained().save(tmp_path / "art")
    with pytest.raises(
        ArtifactError, match=r"trained on encoder 'hashing-bow-64'.*'hashing-bow-32'"
    ):
        load_scorer(tmp_path / "art", encoder=HashingEncoder(dim=32))


def test_without_an_encoder_the_recorded_one_is_opened_by_name(tmp_path: Path) -> None:
    scorer = trained()
    scorer.save(tmp_path / "art")
    loaded = load_scorer(tmp_path / "art")
    assert loaded.encoder.id == "hashing-bow-64"
    assert np.array_equal(loaded.predict(PROBES), scorer.predict(PROBES))


def test_another_format_version_is_an_error(tmp_path: Path) -> None:
    trained().save(tmp_path / "art")
    manifest_file = tmp_path / "art" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format version"):
        load_scorer(tmp_path / "art", encoder=ENCODER)


def test_missing_or_damaged_artifacts(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no router artifact"):
        load_scorer(tmp_path / "nothing", encoder=ENCODER)
    trained().save(tmp_path / "art")
    (tmp_path / "art" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match=r"arrays.npz: cannot load"):
        load_scorer(tmp_path / "art", encoder=ENCODER)


def test_saving_never_overwrites_an_unrelated_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not a router artifact"):
        trained().save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_serving_an_artifact_never_imports_the_training_stack(tmp_path: Path) -> None:
    trained("mlp").save(tmp_path / "art")
    script = (
        "import sys\n"
        "from modelyard.learned import load_scorer\n"
        f"s = load_scorer({str(tmp_path / 'art')!r})\n"
        "s.predict(['a python bug'])\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'torch') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
